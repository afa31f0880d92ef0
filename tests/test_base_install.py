"""The research CLI with only the base install (``pip install quantfleet``, no extras): every
module an extra brings (pyproject.toml's ``data``, ``ray``, ``portfolio``, ``state``,
``pipeline``, ``search``) is made unimportable in a subprocess, which then runs ``quantfleet backtest``."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("data", "ray", "portfolio", "state", "pipeline", "search")

# a meta-path finder refusing the listed top-level modules, then the CLI's entry point
SHIM = """
import sys
BLOCKED = set(sys.argv[1].split(","))

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, Block())
sys.argv = ["quantfleet", *sys.argv[2:]]
from quantfleet.cli import main
main()
"""


def _dist(req: str) -> str:
    return re.split(r"[\s<>=!~\[;]", req, maxsplit=1)[0].lower().replace("_", "-")


def blocked_modules() -> list[str]:
    """Top-level modules of the extras' own packages that the base dependencies don't bring."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {_dist(r) for r in project["dependencies"]}
    extra = {_dist(r) for k in EXTRAS for r in project["optional-dependencies"][k]}
    by_dist: dict[str, set[str]] = {}
    for mod, dists in importlib.metadata.packages_distributions().items():
        for d in dists:
            by_dist.setdefault(d.lower().replace("_", "-"), set()).add(mod)
    mods = sorted({m for d in extra - base - {"quantfleet"} for m in by_dist.get(d, ())})
    assert {"prometheus_client", "duckdb", "s3fs"} <= set(mods)  # installed here, so listed
    assert "fsspec" not in mods
    return mods


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLEET_")}
    environ.update(PYTHONPATH=str(ROOT / "src"), **env)
    return subprocess.run([sys.executable, "-c", SHIM, ",".join(blocked_modules()), *args],
                          capture_output=True, text=True, env=environ, cwd=ROOT, timeout=600)


def test_backtest_runs_on_the_base_install(tmp_path):
    args = ("backtest", "synthetic:gbm?bars=300&assets=1&seed=3", "-s", "sma_cross",
            "-p", "fast=5", "-p", "slow=20", "--json")
    res = cli(*args, "--no-store")
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout)
    assert row["strategy"] == "sma_cross" and row["total_return"] == row["total_return"]
    # the default, recorded to a local store
    res = cli(*args, "--store", str(tmp_path / "store"))
    assert res.returncode == 0, res.stderr
    assert list((tmp_path / "store" / "runs").iterdir())
    # metrics asked for without prometheus_client: one line, exit 2
    res = cli(*args, "--no-store", QUANTFLEET_METRICS="1")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "error: QUANTFLEET_METRICS asks for metrics, which need prometheus_client: pip install "
        "'quantfleet[state]', or unset it (or QUANTFLEET_METRICS=0)"]
