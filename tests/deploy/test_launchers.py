"""Ray launcher, fake_multinode, KubeRay and SkyPilot configs, checked with Ray's own validation
where Ray has one (no cloud credentials are needed for any of it)."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

from quantfleet.cluster import REMOTE_GCS_PORT

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _load(rel: str) -> dict:
    return yaml.safe_load((DEPLOY / rel).read_text())


def _kuberay_autoscaler_gcs_port() -> int:
    """The port KubeRay's autoscaler sidecar connects to when started without --gcs-address,
    read from the installed Ray (ray/autoscaler/_private/kuberay/run_autoscaler.py)."""
    import inspect
    import re

    from ray.autoscaler._private.kuberay import run_autoscaler

    src = inspect.getsource(run_autoscaler.run_kuberay_autoscaler)
    (port,) = re.findall(r"gcs_address or build_address\(get_node_ip_address\(\), (\d+)\)", src)
    return int(port)


def _requires_python() -> tuple[int, int]:
    """The lowest Python the project supports, from pyproject.toml's requires-python."""
    import re
    import tomllib

    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    major, minor = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec.strip()).groups()
    return int(major), int(minor)


def test_aws_config_passes_rays_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = _load("ray/aws.yaml")
    cfg = prepare_config(copy.deepcopy(raw))  # merges ray/autoscaler/aws/defaults.yaml
    validate_config(cfg)
    assert cfg["provider"]["type"] == "aws"
    head = cfg["available_node_types"][cfg["head_node_type"]]
    assert head["resources"]["CPU"] == 0 and head["max_workers"] == 0
    workers = [v for k, v in cfg["available_node_types"].items() if k != cfg["head_node_type"]]
    assert len(workers) == 1
    w = workers[0]
    assert w["min_workers"] == 0 < w["max_workers"] <= cfg["max_workers"]
    assert w["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert cfg["idle_timeout_minutes"] > 0
    setup = " ".join(cfg["setup_commands"])
    assert "pip install" in setup and "[ray,state,pipeline,portfolio,data]" in setup
    assert f"--port={REMOTE_GCS_PORT}" in " ".join(cfg["head_start_ray_commands"])
    assert f":{REMOTE_GCS_PORT}" in " ".join(cfg["worker_start_ray_commands"])
    # the project needs Python >= 3.11 (pyproject), which the AMI's Ubuntu 22.04 lacks: the
    # venv is made with the python3.11 the setup installs
    assert "python3.11 -m venv" in setup and "install -y python3.11" in setup
    assert _requires_python() == (3, 11)
    # Ray's AWS node provider runs on the head and imports boto3
    assert any("pip install" in c and "boto3" in c for c in cfg["head_setup_commands"])


def test_rays_validation_rejects_a_broken_aws_config():
    from ray.autoscaler._private.util import prepare_config, validate_config

    bad = _load("ray/aws.yaml")
    bad["idle_timeout_minutes"] = -1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(bad))
    bad = _load("ray/aws.yaml")
    bad["head_node_type"] = "nope"
    with pytest.raises(ValueError, match="head_node_type"):
        validate_config(prepare_config(bad))


def test_fake_multinode_config_is_what_the_autoscaler_validates():
    # the monitor calls validate_config on the file as is (the wheel ships no defaults for
    # fake_multinode, so prepare_config cannot run on it)
    from ray.autoscaler._private.util import validate_config

    cfg = _load("ray/fake_multinode.yaml")
    validate_config(cfg)
    p = cfg["provider"]
    assert p["type"] == "fake_multinode" and p["use_node_id_as_ip"]
    assert p["disable_node_updaters"] and p["disable_launch_config_check"]
    assert cfg["available_node_types"][cfg["head_node_type"]]["resources"]["CPU"] == 0
    worker = cfg["available_node_types"]["ray.worker.cpu"]
    assert worker["resources"]["CPU"] == 1
    assert worker["min_workers"] == 0 and worker["max_workers"] == 2
    # autoscaler v1 (Ray 2.60's default outside KubeRay) reads the top-level idle timeout
    assert 0 < cfg["idle_timeout_minutes"] * 60 <= 10
    assert cfg["upscaling_speed"] > 0


@pytest.fixture(scope="module")
def raycluster() -> dict:
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "raycluster.yaml").read_text()))
    (rc,) = [d for d in docs if d["kind"] == "RayCluster"]
    return rc


def test_raycluster_structure(raycluster):
    rc = raycluster
    assert rc["apiVersion"] == "ray.io/v1"
    assert rc["metadata"]["name"] and rc["metadata"]["namespace"]
    spec = rc["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    assert spec["autoscalerOptions"]["upscalingMode"] in ("Default", "Conservative", "Aggressive")
    head = spec["headGroupSpec"]
    # the GCS is where the autoscaler sidecar looks for it: KubeRay starts it without
    # --gcs-address, and Ray's run_autoscaler then connects to <head>:<this port>
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert int(head["rayStartParams"]["port"]) == _kuberay_autoscaler_gcs_port() == REMOTE_GCS_PORT

    def check_pod(template, name):
        (c,) = template["spec"]["containers"]
        assert c["name"] == name and c["image"]
        assert c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"]
        assert c["resources"]["requests"] == c["resources"]["limits"]
        env = {e["name"] for e in c["env"]}
        assert {"QUANTFLEET_STORE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= env
        return c

    head_c = check_pod(head["template"], "ray-head")
    assert {p["containerPort"] for p in head_c["ports"]} >= {REMOTE_GCS_PORT, 8265, 10001, 8080}
    (group,) = spec["workerGroupSpecs"]
    check_pod(group["template"], "ray-worker")
    assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert group["groupName"]


def test_raycluster_translates_to_a_valid_autoscaler_config(raycluster):
    # the function KubeRay's in-tree autoscaler runs on the live CR (it validates the result)
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    cfg = _derive_autoscaling_config_from_ray_cr(copy.deepcopy(raycluster))
    types = cfg["available_node_types"]
    assert types["headgroup"]["resources"]["CPU"] == 0
    assert types["cpu"]["resources"]["CPU"] == 4
    assert types["cpu"]["max_workers"] == raycluster["spec"]["workerGroupSpecs"][0]["maxReplicas"]
    assert cfg["idle_timeout_minutes"] == (
        raycluster["spec"]["autoscalerOptions"]["idleTimeoutSeconds"] / 60)


def test_skypilot_task_avoids_skypilots_ray_port():
    task = _load("skypilot/ray-cluster.yaml")
    assert set(task) <= {"name", "num_nodes", "resources", "envs", "workdir", "setup", "run",
                         "file_mounts", "secrets", "config"}
    # our GCS on REMOTE_GCS_PORT; that it differs from SkyPilot's own runtime Ray's port is
    # checked against the installed SkyPilot's constant (tests/deploy/test_skypilot.py)
    assert task["envs"]["RAY_PORT"] == str(REMOTE_GCS_PORT)
    assert "--port=$RAY_PORT" in task["run"] and ":$RAY_PORT" in task["run"]
    assert "[ray,state,pipeline,portfolio,data]" in task["setup"]
    assert task["num_nodes"] >= 1
