"""SkyPilot stays out of quantfleet's environment: it is installed into a venv of its own
(cached: ``$QUANTFLEET_SKYPILOT_VENV`` or ``.quantfleet/skypilot-venv``) and the task file is
validated there with ``sky.Task.from_yaml``, with HOME pointed at a temp dir."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantfleet.cluster import REMOTE_GCS_PORT, _clean_env, _live_pids, ensure_skypilot_venv

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "deploy" / "skypilot" / "ray-cluster.yaml"

_VALIDATE = """
import json, sys, sky
t = sky.Task.from_yaml(sys.argv[1])
(res,) = list(t.resources)
from sky.skylet import constants
print(json.dumps({"name": t.name, "num_nodes": t.num_nodes, "envs": dict(t.envs),
                  "use_spot": res.use_spot, "ports": res.ports, "version": sky.__version__,
                  "run": t.run, "sky_ray_port": constants.SKY_REMOTE_RAY_PORT}))
"""


@pytest.fixture(scope="module")
def sky_venv() -> Path:
    path = Path(os.environ.get("QUANTFLEET_SKYPILOT_VENV",
                               ROOT / ".quantfleet" / "skypilot-venv"))
    return ensure_skypilot_venv(path)


@pytest.mark.skypilot
def test_task_file_validates_with_skypilot_in_its_own_venv(sky_venv, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**_clean_env(), "HOME": str(home), "SKYPILOT_DISABLE_USAGE_COLLECTION": "1"}
    try:
        r = subprocess.run([str(sky_venv / "bin" / "python"), "-c", _VALIDATE, str(TASK)],
                           capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        t = json.loads(r.stdout.strip().splitlines()[-1])
        assert t["name"] == "quantfleet-ray" and t["num_nodes"] == 2
        # our Ray must not take the port of SkyPilot's own runtime Ray on the same nodes (read
        # from the installed SkyPilot, not restated)
        assert int(t["envs"]["RAY_PORT"]) == REMOTE_GCS_PORT != int(t["sky_ray_port"])
        assert t["use_spot"]
        assert "8265" in [str(p) for p in t["ports"]]
        # a broken task file is rejected by SkyPilot's own schema
        bad = tmp_path / "bad.yaml"
        bad.write_text(TASK.read_text().replace("num_nodes: 2", "num_nodez: 2"))
        r = subprocess.run([str(sky_venv / "bin" / "python"), "-c", _VALIDATE, str(bad)],
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode != 0 and "num_nodez" in r.stderr
    finally:
        # stop an API server SkyPilot may have started under this HOME, and nothing else:
        # `sky api stop` would kill any SkyPilot API server on the default port of this
        # machine (another test run's, a user's), whatever its HOME
        for pid in _started_under(home) + _live_pids(lambda cmd, _pg: str(home) in cmd):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def _started_under(home: Path) -> list[int]:
    """Processes of this user whose environment has ``HOME=home``."""
    want = f"HOME={home}".encode()
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            if want in (p / "environ").read_bytes().split(b"\0"):
                out.append(int(p.name))
        except OSError:
            continue
    return out


@pytest.mark.skypilot
def test_core_venv_has_no_skypilot_and_stays_consistent(sky_venv):
    assert importlib.util.find_spec("sky") is None
    r = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # the isolated venv is a different interpreter prefix
    out = subprocess.run([str(sky_venv / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
                         capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()).resolve() != Path(sys.prefix).resolve()
