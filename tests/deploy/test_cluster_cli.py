"""``quantfleet cluster``: the commands each provider would run (--dry-run; no credentials
exist here) and the one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quantfleet.cluster import provider_commands
from quantfleet.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def qf(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "quantfleet.cli", "cluster", *args],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def lines(p: subprocess.CompletedProcess) -> list[str]:
    return [ln.removeprefix("would run: ") for ln in p.stdout.splitlines()]


def test_aws_wraps_the_ray_cluster_launcher():
    cfg = str(ROOT / "deploy" / "ray" / "aws.yaml")
    assert lines(qf("up", "--provider", "aws", "--dry-run")) == [
        f"ray up -y --no-config-cache {cfg}"]
    assert lines(qf("down", "--provider", "aws", "--dry-run")) == [f"ray down -y {cfg}"]
    st = lines(qf("status", "--provider", "aws", "--dry-run"))[0]
    assert st.startswith(f"ray exec {cfg} ") and "ray status --address localhost:6379" in st
    sc = lines(qf("scale", "16", "--provider", "aws", "--dry-run"))[0]
    assert "request_resources(num_cpus=16)" in sc


def test_kuberay_wraps_kubectl():
    cfg = str(ROOT / "deploy" / "k8s" / "raycluster.yaml")
    assert lines(qf("up", "--provider", "kuberay", "--dry-run")) == [f"kubectl apply -f {cfg}"]
    # the group-level --provider works too
    assert lines(qf("--provider", "kuberay", "down", "--dry-run")) == [
        f"kubectl delete -f {cfg}"]
    assert lines(qf("status", "--provider", "kuberay", "--dry-run")) == [
        "kubectl get raycluster quantfleet -o wide",
        "kubectl get pods -l ray.io/cluster=quantfleet -o wide"]
    sc = lines(qf("scale", "8", "--provider", "kuberay", "--dry-run"))[0]
    assert sc.startswith("kubectl exec svc/quantfleet-head-svc -c ray-head -- python -c ")


def test_skypilot_runs_sky_from_its_own_venv(tmp_path, monkeypatch):
    venv = tmp_path / "sky-venv"
    env_cmd = [sys.executable, "-m", "quantfleet.cli", "cluster"]
    cfg = str(ROOT / "deploy" / "skypilot" / "ray-cluster.yaml")

    def run(*args):
        p = subprocess.run([*env_cmd, *args], capture_output=True, text=True, cwd=ROOT,
                           env={**__import__("os").environ,
                                "QUANTFLEET_SKYPILOT_VENV": str(venv)}, timeout=120)
        assert p.returncode == 0, p.stderr
        return lines(p)

    sky = f"{venv}/bin/sky"
    assert run("up", "--provider", "skypilot", "--name", "qf", "--dry-run") == [
        f"{sky} launch -y -c qf {cfg}"]
    assert run("up", "--provider", "skypilot", "--nodes", "3", "--dry-run") == [
        f"{sky} launch -y --num-nodes 3 -c quantfleet {cfg}"]
    assert run("down", "--provider", "skypilot", "--dry-run") == [f"{sky} down -y quantfleet"]
    assert run("status", "--provider", "skypilot", "--dry-run") == [f"{sky} status quantfleet"]
    assert not venv.exists()  # a dry run installs nothing


def test_local_dry_run_names_the_fake_multinode_config():
    out = qf("up", "--dry-run").stdout
    assert "RAY_FAKE_CLUSTER=1 ray start --head --num-cpus=0" in out
    assert "fake_multinode.yaml" in out


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    p = qf("up", "--provider", "awz", "--dry-run", ok=False)
    assert p.returncode == 2
    assert p.stderr.strip() == ("error: --provider 'awz': unknown provider; did you mean 'aws'? "
                                "(choose from local, aws, kuberay, skypilot)")
    p = qf("scale", "4", "--provider", "skypilot", "--dry-run", ok=False)
    assert p.returncode == 2 and "fixed node count" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = qf("status", "--state-dir", str(tmp_path), ok=False)
    assert p.returncode == 2 and "no local cluster is running" in p.stderr
    p = qf("down", "--state-dir", str(tmp_path), ok=False)
    assert p.returncode == 2 and "nothing to stop" in p.stderr


def test_provider_commands_validates_arguments():
    with pytest.raises(ConfigError, match="CPUs must be >= 0"):
        provider_commands("aws", "scale", n=-1)
    with pytest.raises(ConfigError, match="unknown action"):
        provider_commands("kuberay", "restart")
    with pytest.raises(ConfigError, match="no external commands"):
        provider_commands("local", "up")


def test_cluster_module_imports_neither_ray_nor_skypilot():
    code = ("import sys, quantfleet.cli, quantfleet.cluster; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'sky'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
