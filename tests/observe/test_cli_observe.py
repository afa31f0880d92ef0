"""`quantfleet profile` and `quantfleet cost` on a run recorded in a store, in subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.observe.recorded import recorded_run
from tests.observe.spanset import decomposition_case

STORE: dict[str, str] = {}


def qf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quantfleet.cli", *args, "--store",
                           STORE["url"]], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> str:
    """The id of a recorded run (found by id like any command's run)."""
    STORE["url"] = str(tmp_path_factory.mktemp("obs") / "lake")
    return recorded_run(STORE["url"], decomposition_case(), 10.0, 2, "processes",
                        {"baseline_kind": "measured", "serial_s": 7.0})


def test_a_unique_prefix_and_latest_find_the_run(run_dir):
    for ref in (run_dir[:12], "latest"):
        p = qf("profile", ref, "--json")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["run_id"] == run_dir


def test_profile_text_and_json(run_dir):
    p = qf("profile", run_dir)
    assert p.returncode == 0, p.stderr
    assert "Time by stage × component" in p.stdout and "Bottlenecks" in p.stdout
    assert "0.70× on 2 workers" in p.stdout
    p = qf("profile", run_dir, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["workers"] == 2 and out["spans"] == 7
    assert out["heatmap"]["sweep"]["sma_cross"] == pytest.approx(5.5)
    assert out["speedup"]["loss_seconds"]["serial"] == pytest.approx(5.0)
    # window [-1, 9]; spans cover [0.5, 7] and [8, 9]: 2.5 s of the wall has no span
    assert out["unaccounted_s"] == pytest.approx(2.5) and out["driver_s"] == 0
    assert out["unaccounted_share"] == pytest.approx(0.25)
    first = out["bottlenecks"][0]
    assert (first["kind"], first["subject"]) == ("component", "sma_cross")  # 6.5 of 20 s
    assert out["bottlenecks"][1]["kind"] == "serial"  # 5 of 20 worker-seconds


def test_cost_table_and_json(run_dir):
    p = qf("cost", run_dir, "--instance", "c7i.xlarge")
    assert p.returncode == 0, p.stderr
    assert "c7i.xlarge" in p.stdout
    assert ("Costs simulated from quantfleet/observe/instances.json (bundled) v1 of 2024-06-01, "
            "approximate list prices; assumes 90 s start-up") in p.stdout
    assert "Assumptions: start-up per node (s): 90.0; idle tail billed per node (s): 60.0" \
        in p.stdout
    p = qf("cost", run_dir, "--instance", "F8s_v2", "--nodes", "4", "--spot", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["instance"]["name"] == "F8s_v2" and out["spot"] is True
    assert [r["nodes"] for r in out["table"]] == [0, 4]
    assert out["table"][1]["usd_per_h"] == out["instance"]["spot_usd_h"]
    assert out["catalog"]["date"] and out["inputs"]["workers_local"] == 2
    assert out["label"].startswith("simulated from quantfleet/observe/instances.json "
                                   "(bundled) v1 of 2024-06-01, approximate list prices")
    assert out["assumptions"]["start-up per node (s)"] == 90.0
    assert out["assumptions"]["price"].startswith("spot F8s_v2")


def test_cost_with_a_users_price_list(run_dir, tmp_path):
    prices = tmp_path / "ours.json"
    prices.write_text(json.dumps({"version": 3, "date": "2026-12-01", "source": "our quote",
                                  "instances": {"box16": {"vcpus": 16, "memory_gib": 64,
                                                          "on_demand_usd_h": 1.0}}}))
    p = qf("cost", run_dir, "--prices", str(prices), "--instance", "box16", "--nodes", "2",
           "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["label"].startswith(f"simulated from {prices} v3 of 2026-12-01")
    assert out["table"][1]["usd_per_h"] == 1.0 and out["instance"]["vcpus"] == 16
    p = qf("cost", run_dir, "--prices", str(prices), "--instance", "box16")
    assert p.returncode == 0 and f"Costs simulated from {prices} v3 of 2026-12-01" in p.stdout


@pytest.mark.parametrize("args,msg", [
    (("cost", "RUN", "--instance", "c7i.2xlarg"),
     "error: unknown instance type 'c7i.2xlarg'; did you mean c7i.2xlarge"),
    (("cost", "RUN", "--nodes", "0"), "error: --nodes must be >= 1 (got 0)"),
    (("profile", "MISSING"), "error: no run 'nope' in store"),
    (("cost", "MISSING"), "error: no run 'nope' in store"),
    (("profile", "RUN", "--top", "0"), "error: --top must be >= 1"),
    (("cost", "RUN", "--prices", "BADPRICES"),
     "error: price list BADPRICES: instances.box.on_demand_usd_h must be a number >= 0 "
     "(got 'cheap')"),
    (("report", "RUN", "--prices", "BADPRICES", "--out", "OUT"),
     "error: price list BADPRICES: instances.box.on_demand_usd_h must be a number >= 0"),
    (("cost", "RUN", "--prices", "NOFILE"), "error: price list 'NOFILE' not found"),
])
def test_bad_input_one_line_exit_2(run_dir, tmp_path, args, msg):
    bad = tmp_path / "prices.json"
    bad.write_text(json.dumps({"version": 1, "date": "2026-01-01", "source": "s", "instances": {
        "box": {"vcpus": 4, "memory_gib": 8, "on_demand_usd_h": "cheap"}}}))
    names = {"RUN": run_dir, "MISSING": "nope", "BADPRICES": str(bad),
             "NOFILE": str(tmp_path / "none.json"), "OUT": str(tmp_path / "r.html")}
    args = tuple(names.get(a, a) for a in args)
    msg = msg.replace("BADPRICES", str(bad)).replace("NOFILE", str(tmp_path / "none.json"))
    p = qf(*args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], p.stderr


def test_run_without_spans_is_one_line(tmp_path):
    from quantfleet.store import record_run

    m = record_run(str(tmp_path / "lake"), "sweep", outputs={"sweep_results": {"a": 1}})
    p = subprocess.run([sys.executable, "-m", "quantfleet.cli", "profile", m.run_id, "--store",
                        str(tmp_path / "lake")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "has no spans and summary" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
