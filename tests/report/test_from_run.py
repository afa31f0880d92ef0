"""The report built from a real run of the pipeline's stages (tournament, evolution,
portfolio on the bundled data, serial), not from a synthetic view: what the stages write is
what the report reads."""

from __future__ import annotations

import re

import numpy as np
import pytest

SMALL = {
    "name": "small", "executor": {"kind": "serial"},
    "data": {"source": "sp500", "assets": ["AAPL", "AMD", "BAC", "XOM"]},
    "tournament": {"strategies": ["sma_cross", "rsi"], "train": 1500, "test": 750,
                   "max_combos": 4, "checkpoint": None},
    # opt-in; no budget: every item is timed (never sampled), so the section's label is known
    "baseline": {"enabled": True},
    "evolution": {"strategies": ["sma_cross"], "population": 6, "generations": 2,
                  "checkpoint": None},
    "portfolio": {"profiles": ["hrp", "equal_weight"], "winners": 4, "train": 252,
                  "test": 126},
}


def _section(page: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert m, sid
    return m.group(1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import os

    from quantfleet.pipeline.config import validate_config
    from quantfleet.pipeline.record import run_stages

    tmp = tmp_path_factory.mktemp("fromrun")
    os.environ.setdefault("QUANTFLEET_HOME", str(tmp / "home"))
    cfg = validate_config({**SMALL, "store": str(tmp / "lake")}, "test")
    return cfg, run_stages(cfg, "run", log=lambda m: None)


def test_every_section_of_a_real_run_renders(run, tmp_path):
    from quantfleet.pipeline.report import write_report
    from quantfleet.store import Store

    cfg, out = run
    m = Store.open(cfg.store).get_run(out.run_id)
    assert m.output("report_view")  # recorded with the run (report.enabled)
    page = write_report(cfg.store, out.run_id, tmp_path / "r.html").read_text(encoding="utf-8")
    for sid in ("summary", "lineage", "leaderboard", "equity", "evolution", "portfolio",
                "latency", "utilisation", "cost"):
        body = _section(page, sid)
        assert "Not part of this run." not in body and "Could not render" not in body, sid
    lb = _section(page, "leaderboard")
    assert "sma_cross" in lb
    # the winner's verdict, deflated by every pair × combo, beside each pair's own figures and
    # the buy-and-hold columns
    win = out.results["tournament"].winner_overfit
    assert f"winner {win['strategy']}/{win['asset']}: DSR" in lb
    assert f"as the best of {win['n_trials']:,} trials (8 strategy × asset pairs" in lb
    for col in ("pair DSR", "pair PBO", "B&amp;H Sharpe", "excess Sharpe",
                "trials compared (N)"):
        assert col in lb, col
    # how sure: the winner's bootstrap intervals and permutation p-value, from the record
    conf = out.results["tournament"].confidence
    assert '<h3>How sure are we?</h3>' in lb
    assert f"Winner {conf['strategy']}/{conf['asset']}: Out-of-sample Sharpe" in lb
    assert f"p = {conf['p_value']:.3f}</span>" in lb
    assert f"in which the best of the {conf['n_pairs']} pairs did at least as well" in lb
    assert (f"95 % interval [{conf['sharpe_ci'][0]:,.2f}, {conf['sharpe_ci'][1]:,.2f}]"
            in lb)
    port = _section(page, "portfolio")
    assert "hrp" in port and "bh_sharpe" in port and "excess_sharpe" in port
    assert ("Members chosen per window from the 8 tournament pairs by train-window Sharpe "
            "(top 4)") in port
    assert "Members: windows each column was chosen in" in port
    for name in ("hrp", "equal_weight"):  # each profile's bootstrap intervals
        assert f"How sure ({name}: out of sample): Sharpe 95 % CI [" in port, name
    # the tournament measured its serial baseline: the speedup section reads its keys
    sp = _section(page, "speedup")
    assert "Not part of this run." not in sp and "baseline kind" in sp


def test_the_report_of_a_real_run_is_small_labelled_and_first_screen_first(run, tmp_path):
    from quantfleet.observe.cost import load_catalog
    from quantfleet.pipeline.report import write_report

    cfg, out = run
    path = write_report(cfg.store, out.run_id, tmp_path / "r.html")
    page = path.read_text(encoding="utf-8")
    # the demo's report must stay under 2 MB (it was 10 MB with plotly): every line is thinned
    # to a bounded number of points, so a figure's size does not grow with the bars (this
    # run has the demo's 7,500+ bars) and the page's size grows only with the table rows
    assert path.stat().st_size < 2_000_000
    figs = re.findall(r'<div class="figure".*?</svg></div>', page, re.S)
    # the "where the speed-up was lost" figure is drawn only for a valid speedup, and whether
    # the measured one is valid depends on the machine's load: not asserted here
    drawn = set(re.findall(r'<div class="figure" id="fig-([a-z-]+?)-[0-9]+"', page))
    assert {"equity", "evolution", "weights", "portfolio-returns", "latency", "utilisation",
            "cost"} <= drawn, drawn
    assert max(len(f) for f in figs) < 120_000, [len(f) for f in figs]
    assert len(_section(page, "leaderboard")) < 8 * 1_000 + 6_000
    v = _section(page, "verdict")
    win = out.results["tournament"].leaderboard.iloc[0]
    assert f"<b>{win['strategy']}/{win['asset']}</b>" in v
    assert f'id="bh">{float(win["bh_sharpe"]):.2f}</b>' in v
    assert "equal_weight" in v and "buy-and-hold" in v
    cat = load_catalog()
    assert f"v{cat['version']} of {cat['date']}, approximate list prices" in v
    assert f"buy-and-hold {win['asset']}" in _section(page, "equity")
    # workers named by node and index, not by their ids
    assert "node 0 / worker 0" in _section(page, "utilisation")


def test_a_users_price_list_reaches_the_report(run, tmp_path):
    import json

    from quantfleet.errors import QuantfleetError
    from quantfleet.pipeline.report import write_report

    cfg, out = run
    prices = tmp_path / "mine.json"
    prices.write_text(json.dumps({"version": 7, "date": "2026-11-30", "source": "our quote",
                                  "instances": {"c7i.2xlarge": {"vcpus": 8, "memory_gib": 16,
                                                                "on_demand_usd_h": 3.57}}}))
    page = write_report(cfg.store, out.run_id, tmp_path / "p.html",
                        prices=prices).read_text(encoding="utf-8")
    assert f"simulated from {prices} v7 of 2026-11-30, approximate list prices" in page
    prices.write_text(json.dumps({"version": 7, "date": "2026-11-30", "source": "x",
                                  "instances": {"c7i.2xlarge": {"vcpus": 8, "memory_gib": 16}}}))
    with pytest.raises(QuantfleetError, match=r"^price list .*mine\.json: instances\.c7i\.2xlarge "
                                              r"lacks on_demand_usd_h$"):
        write_report(cfg.store, out.run_id, tmp_path / "q.html", prices=prices)


def test_the_view_holds_what_the_stages_wrote(run):
    from quantfleet.pipeline.run_record import load_run
    from quantfleet.report import load_view

    cfg, out = run
    rec = load_run(cfg.store, out.run_id)
    view = load_view(rec.store, rec.manifest.output("report_view"))
    res = out.results
    assert list(view.leaderboard["strategy"]) == list(res["tournament"].leaderboard["strategy"])
    assert [w["params"] for w in view.evolution_winners] == [
        w["params"] for w in res["evolution"].winners]
    assert set(view.portfolio_weights) == {"hrp", "equal_weight"}
    port = res["portfolio"]
    assert list(view.portfolio_returns.columns) == ["hrp", "equal_weight", "buy-and-hold"]
    np.testing.assert_array_equal(view.portfolio_returns["buy-and-hold"].to_numpy(),
                                  port.benchmark.to_numpy())
    counts = port.members["column"].value_counts()
    assert dict(zip(view.portfolio_members["column"], view.portfolio_members["windows"],
                    strict=True)) == counts.to_dict()
    assert view.portfolio_members["share"].max() <= 1.0
    assert view.summary["status"] == "succeeded" and view.summary["command"] == "run"


def test_a_sweep_runs_report_shows_its_leaderboard_and_winners_verdict(tmp_path):
    import os

    from quantfleet.pipeline.config import validate_config
    from quantfleet.pipeline.record import run_stages
    from quantfleet.pipeline.report import write_report

    os.environ.setdefault("QUANTFLEET_HOME", str(tmp_path / "home"))
    off = {s: {"enabled": False} for s in ("tournament", "evolution", "portfolio")}
    cfg = validate_config({"name": "sweep", "executor": {"kind": "serial"},
                           "store": str(tmp_path / "lake"),
                           "data": {"source": "sp500", "assets": ["AAPL", "KO"]}, **off,
                           "sweep": {"enabled": True, "strategy": "sma_cross",
                                     "grid": {"fast": [5, 10], "slow": [50, 100]}}}, "test")
    out = run_stages(cfg, "sweep", log=lambda m: None)
    page = write_report(cfg.store, out.run_id, tmp_path / "s.html").read_text(encoding="utf-8")
    lb = _section(page, "leaderboard")
    of = out.results["sweep"].overfit
    assert f"winner on {of['asset']}: DSR" in lb and "(2 assets × 4 combos)" in lb
    # a sweep's board keeps its own columns (not the tournament's compact ones)
    assert "<th>bh_sharpe</th>" in lb and "<th>excess_total_return</th>" in lb
    # and its winner's Sharpe is not called out of sample
    v = _section(page, "verdict")
    assert "Sharpe (in sample: a sweep has no out-of-sample test)" in v
    assert "out-of-sample Sharpe" not in v
    from quantfleet.pipeline.report import run_view, verdict_summary
    from quantfleet.pipeline.run_record import load_run

    assert verdict_summary(run_view(load_run(cfg.store, out.run_id)))["in_sample"] is True


def test_the_run_summary_printed_by_demo(run, capsys):
    from quantfleet.commands.pipeline import _print_verdict
    from quantfleet.pipeline.report import verdict_summary
    from quantfleet.pipeline.run_record import load_run
    from quantfleet.report import load_view
    from quantfleet.research.overfit import DSR_GOOD, DSR_LUCK

    cfg, out = run
    rec = load_run(cfg.store, out.run_id)
    v = verdict_summary(load_view(rec.store, rec.manifest.output("report_view")))
    board = out.results["tournament"].leaderboard
    assert [p["pair"] for p in v["top_pairs"]] == [
        f"{s}/{a}" for s, a in zip(board["strategy"].head(5), board["asset"].head(5),
                                   strict=True)]
    for p, (_, r) in zip(v["top_pairs"], board.head(5).iterrows(), strict=True):
        assert p["oos_sharpe"] == pytest.approx(r["oos_sharpe"])
        assert p["bh_sharpe"] == pytest.approx(r["bh_sharpe"])
        d = r["pair_dsr"]
        assert p["verdict"] == ("unlikely to be luck" if d >= DSR_GOOD else "inconclusive"
                                if d >= DSR_LUCK else "likely luck")
    port = out.results["portfolio"]
    assert [p["profile"] for p in v["profiles"]] == ["hrp", "equal_weight", "buy-and-hold"]
    assert v["winner"]["trials"] == out.results["tournament"].winner_overfit["n_trials"]
    assert v["speedup"] and "measured baseline" in v["speedup"]
    assert "approximate list prices" in v["cost"]["label"]
    assert v["cost"]["assumptions"]["start-up per node (s)"] == 90.0
    # the headline is the smallest cloud setup, as on the report's first screen
    wi = load_view(rec.store, rec.manifest.output("report_view")).cost_what_if
    assert v["cost"]["setup"] == wi[wi["nodes"] > 0]["setup"].iloc[0]
    assert v["cost"]["setup"].startswith("1 × ")
    _print_verdict(v)
    text = capsys.readouterr().out
    first = v["top_pairs"][0]
    assert f"{first['pair']}" in text and f"{first['oos_sharpe']:.2f}" in text
    assert "Portfolio profiles, out of sample:" in text and "buy-and-hold" in text
    assert text.count("\n") < 25  # a summary, not a dump
    assert "Simulated cost: $" in text and "approximate list prices" in text
    assert port is not None


def test_the_prefect_summary_labels_its_cost(run):
    from quantfleet.pipeline.prefect_flow import run_summary_markdown
    from quantfleet.pipeline.run_record import load_run
    from quantfleet.report import load_view

    cfg, out = run
    rec = load_run(cfg.store, out.run_id)
    md = run_summary_markdown(load_view(rec.store, rec.manifest.output("report_view")), None)
    cost = md.split("## Simulated cost", 1)[1]
    assert "32 × c7i.2xlarge on-demand:" in cost
    assert "approximate list prices; assumes 90 s start-up" in cost


def test_a_view_recorded_before_cost_labels_is_built_again(run, tmp_path):
    from quantfleet.pipeline.report import write_report
    from quantfleet.pipeline.run_record import load_run
    from quantfleet.report import load_view, save_view

    cfg, out = run
    rec = load_run(cfg.store, out.run_id)
    old = load_view(rec.store, rec.manifest.output("report_view"))
    old.cost_assumptions = old.workers = old.asset_returns = None  # as [2/6] recorded it
    rec.manifest.attach("report_view", save_view(old, rec.store))
    rec.store.amend_run(rec.manifest)
    page = write_report(cfg.store, out.run_id, tmp_path / "o.html").read_text(encoding="utf-8")
    assert "approximate list prices; assumes 90 s start-up" in page
    assert "node 0 / worker 0" in page
    again = load_run(cfg.store, out.run_id)
    assert load_view(again.store, again.manifest.output("report_view")).cost_assumptions


def test_the_speedup_section_shows_the_run_records_figures(run, tmp_path):
    """The report consumes exactly the keys the pipeline writes: the speedup section's
    numbers are the run record's (stage_baselines.tournament of its run_summary)."""
    from quantfleet.pipeline.report import write_report
    from quantfleet.pipeline.run_record import load_run
    from quantfleet.report import load_view

    cfg, out = run
    rec = load_run(cfg.store, out.run_id)
    base = rec.summary["stage_baselines"]["tournament"]
    stage = rec.summary["stages"]["tournament"]["summary"]["baseline"]
    assert base == {**stage, "scope": "tournament"}
    # measured (no budget), both strategies warmed up before any item was timed
    assert base["baseline_kind"] == "measured" and base["warmed"] == 2 == base["strata"]
    assert base["sampled"] == base["items"] == 8
    assert base["workers"] == 1 and base["valid"] == (base["ratio"] <= 1.05)
    view = load_view(rec.store, rec.manifest.output("report_view"))
    sp = view.speedup
    assert sp["scope"] == "tournament stage" and sp["baseline_label"] == "measured"
    for k in ("serial_s", "wall_s", "workers", "valid"):
        assert sp[k] == base[k], k
    page = write_report(cfg.store, out.run_id, tmp_path / "r.html").read_text(encoding="utf-8")
    sec = _section(page, "speedup")
    assert f"{base['serial_s']:,.2f} s" in sec and f"{base['wall_s']:,.2f} s" in sec
    assert f"{sp['busy_s']:,.2f} s" in sec  # seconds, not a percentage
    if base["valid"]:
        assert sp["speedup"] == base["speedup"] and sp["efficiency"] == base["efficiency"]
        assert (f"{base['speedup']:.2f}× faster than its sequential baseline (measured) on 1 "
                f"workers — efficiency {base['efficiency']:.0%}") in sec
    else:  # serial on a loaded machine may time the map > 5 % slower than its baseline
        assert "speedup" not in sp and "no valid speedup" in sec
        assert base["invalid_reason"] in sec


def test_the_run_has_spans_per_strategy_and_for_the_driver_steps(run):
    from quantfleet.observe.heatmap import heatmap, timeline
    from quantfleet.pipeline.run_record import load_run

    cfg, out = run
    rec = load_run(cfg.store, out.run_id)
    hm = heatmap(rec.spans)
    assert hm.loc["tournament", "sma_cross"] > 0 and hm.loc["tournament", "rsi"] > 0
    for stage, comp in (("data", "driver.load"), ("data", "driver.tables"),
                        ("data", "driver.store"), ("tournament", "driver.serial_start"),
                        ("tournament", "driver.tables"), ("tournament", "driver.baseline"),
                        ("tournament", "driver.confidence"),
                        ("tournament", "driver.store"), ("portfolio", "driver.store")):
        assert hm.loc[stage, comp] > 0, (stage, comp)
    comps = {(sp.stage, sp.component) for sp in rec.spans}
    for stage in ("data", "tournament", "evolution", "returns", "portfolio"):
        assert (stage, "driver.orchestration") in comps, stage
    assert ("tournament", "driver.results") in comps
    tl = timeline(rec.spans, rec.wall_s, rec.workers)
    assert 0 <= tl.unaccounted_s <= tl.wall_s and tl.driver_s > 0
