"""`quantfleet health`: the store, catalog and metrics checks work for real and leave nothing
behind; a bad price list or a broken endpoint is a failed check, not a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from quantfleet.pipeline import health


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root)
                  for f in fs) + sorted(os.path.relpath(d, root) for d, _, _ in os.walk(root))


def test_store_check_round_trips_and_cleans_up(tmp_path):
    from quantfleet.store import Store

    root = tmp_path / "lake"
    st = Store.open(str(root))
    kept = st.put_json({"a": 1}, kind="mine")  # something the user had: it stays
    before = _tree(root)
    msg = health.check_store(str(root))
    assert "wrote, verified and deleted artifact" in msg
    assert _tree(root) == before
    assert st.get_json(kept) == {"a": 1}
    # a store folder the check created is removed again
    fresh = tmp_path / "fresh"
    health.check_store(str(fresh))
    assert not fresh.exists()


def test_catalog_check_bundled_and_users(tmp_path):
    from quantfleet.observe.cost import load_catalog

    cat = load_catalog()
    msg = health.check_catalog()
    assert msg.startswith(f"quantfleet/observe/instances.json (bundled) v{cat['version']} of "
                          f"{cat['date']} (")
    assert f"{len(cat['instances'])} instance types valid" in msg
    p = tmp_path / "ours.json"
    p.write_text(json.dumps({"version": 2, "date": "2026-12-01", "source": "quote",
                             "instances": {"box": {"vcpus": 4, "memory_gib": 8,
                                                   "on_demand_usd_h": 0.2}}}))
    assert health.check_catalog(str(p)).startswith(f"{p} v2 of 2026-12-01")
    p.write_text(json.dumps({"version": 2, "date": "2026-12-01", "source": "quote",
                             "instances": {"box": {"vcpus": 4, "memory_gib": 8}}}))
    [c] = [c for c in health.run_checks(store=str(tmp_path / "s"), ray_address=None,
                                        prefect_api=None, prices=str(p),
                                        skip={"store", "metrics", "ray", "prefect"})]
    assert c.name == "catalog" and not c.ok
    assert str(p) in c.detail and "instances.box lacks on_demand_usd_h" in c.detail


def test_metrics_check_serves_scrapes_and_stops(monkeypatch):
    from quantfleet.observe.metrics import RunMetrics

    servers = []
    real_serve = RunMetrics.serve

    def spy(self, *a, **kw):
        servers.append(self)
        return real_serve(self, *a, **kw)

    monkeypatch.setattr(RunMetrics, "serve", spy)
    msg = health.check_metrics()
    assert msg.startswith("http://127.0.0.1:") and "served and scraped" in msg
    [m] = servers
    assert m.url is None and m._server is None  # stopped: nothing left listening


def test_metrics_check_fails_when_the_counts_are_missing(monkeypatch):
    from quantfleet.observe.metrics import RunMetrics

    monkeypatch.setattr(RunMetrics, "on_event", lambda self, *e: None)  # counts nothing
    [c] = health.run_checks(store="x", ray_address=None, prefect_api=None,
                            skip={"store", "catalog", "ray", "prefect"})
    assert not c.ok and "lacks 'quantfleet_tasks_started_total" in c.detail


def test_cli_health_lines_and_bad_skip(tmp_path):
    env = {**os.environ, "QUANTFLEET_HOME": str(tmp_path / "home")}
    args = [sys.executable, "-m", "quantfleet.cli", "health", "--store", str(tmp_path / "s")]
    p = subprocess.run([*args, "--skip", "ray", "--skip", "prefect"], capture_output=True,
                       text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.strip().splitlines()
    assert [ln.split()[:2] for ln in lines] == [["ok", "store"], ["ok", "catalog"],
                                                 ["ok", "metrics"]]
    assert not (tmp_path / "s").exists()
    p = subprocess.run([*args, "--skip", "nope"], capture_output=True, text=True, timeout=300,
                       env=env)
    assert p.returncode == 2 and p.stderr.strip() == (
        "error: --skip 'nope': not a check; one of store, catalog, metrics, ray, prefect")


@pytest.mark.integration
def test_prefect_check_deletes_its_flow_run(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    msg = health.check_prefect(None)
    assert "flow run completed, then deleted" in msg
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(
            name=FlowFilterName(any_=["quantfleet-health"])))
    assert runs == []
