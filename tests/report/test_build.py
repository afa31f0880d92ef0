"""report.build: sections, absent parts, escaping, self-containment; RunView kept in the store."""

from __future__ import annotations

import importlib
import json
import re

import numpy as np
import pandas as pd
import pytest

from quantfleet.errors import QuantfleetError
from quantfleet.report import SECTIONS, RunView, build, load_view, save_view
from tests.report.synthetic import realistic_view

# the package's ``build`` is the function; the module of the same name comes from sys.modules
build_mod = importlib.import_module("quantfleet.report.build")
view_mod = importlib.import_module("quantfleet.report.view")

IDS = ["verdict", "leaderboard", "equity", "portfolio", "evolution", "speedup", "cost",
       "latency", "utilisation", "summary", "lineage"]


def _section(page: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert m, sid
    return m.group(1)


@pytest.fixture(scope="module")
def full_page(tmp_path_factory) -> str:
    path = build(realistic_view(), tmp_path_factory.mktemp("rep") / "report.html")
    return path.read_text(encoding="utf-8")


def test_section_ids_are_stable():
    assert list(SECTIONS) == IDS


def test_empty_view_renders_every_section_as_absent(tmp_path):
    page = build(RunView(run_id="r-empty"), tmp_path / "r.html").read_text(encoding="utf-8")
    for sid in IDS:
        assert "not part of this run" in _section(page, sid).lower(), sid
    assert "<svg" not in page and "<script" not in page
    assert "r-empty" in page


def test_full_view_has_every_section_filled(full_page):
    for sid in IDS:
        body = _section(full_page, sid)
        assert "not part of this run" not in body.lower(), sid
        assert "Could not render" not in body, sid
    assert '<div class="figure"' in _section(full_page, "equity")
    assert "<svg" in _section(full_page, "equity")


def test_self_contained_no_scripts(full_page):
    # figures are inline SVG: no script at all, nothing fetched from anywhere
    assert "<script" not in full_page.lower()
    assert "<link" not in full_page and "<img" not in full_page
    assert "@import" not in full_page and not re.search(r'(src|href)="https?:', full_page)
    assert "url(" not in full_page


def test_small_report_of_a_realistic_view(full_page):
    # 20 series x 750 bars, 5 profiles: far below the demo's 2 MB budget
    assert len(full_page.encode()) < 400_000


def test_numbers_are_formatted(full_page):
    lb = _section(full_page, "leaderboard")
    assert re.search(r'<td class="num">-?\d+\.\d\d%</td>', lb)  # returns as percent
    assert 'class="num good"' in lb or 'class="num bad"' in lb  # graded DSR / PBO cells
    assert "unlikely to be luck" in lb  # overfit verdict line
    assert "$" in _section(full_page, "cost")
    assert "4.14× faster" in _section(full_page, "speedup")


def test_speedup_reads_the_keys_explain_speedup_writes(full_page):
    sp = _section(full_page, "speedup")
    assert "faster than its sequential baseline (measured) on 8 workers — efficiency 52%" in sp
    assert "Where the speed-up was lost" in sp


@pytest.mark.parametrize("v, col, want", [
    (0.1234, "oos_total_return", "12.34%"), (1.23456, "oos_sharpe", "1.23"),
    (1234567, "evaluated", "1,234,567"), (float("nan"), "x", "—"), (None, "x", "—"),
    (0.25, "cost_usd", "$0.25"), (np.float64(2.5), "speedup", "2.50"), (True, "x", "yes"),
    (pd.Timestamp("2024-01-02"), "t", "2024-01-02"), ({"fast": 5, "slow": 20}, "params",
                                                       "fast=5, slow=20"),
    (-0.00987, "oos_sharpe", "-0.0099"),
    # a fraction of capital is a percentage, not dollars; seconds are never percentages;
    # a cost of a fraction of a cent keeps two significant digits
    (0.0041, "costs", "0.41%"), (185.4, "busy_s", "185.40"), (0.0159, "cost_usd", "$0.016"),
    (0.7272, "share", "72.72%"), (0.5, "oos_mean_exposure", "50.00%"),
])
def test_fmt(v, col, want):
    assert build_mod.fmt(v, col) == want


def test_text_is_escaped(tmp_path):
    evil = "<script>alert('x')</script>"
    view = realistic_view(odd_name=evil)
    view.summary["name"] = "<b>bold</b> & co"
    view.lineage[0]["step"] = "<i>load</i>"
    view.bottlenecks[0]["text"] = "<img src=x onerror=alert(1)>"
    page = build(view, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script>alert(" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page
    assert "<i>load</i>" not in page and "<img" not in page
    # figure labels (SVG text, legends) are escaped too: the page holds no script element
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;/SPY" in page


def test_build_into_directory_and_type_errors(tmp_path):
    assert build(RunView("r"), tmp_path) == tmp_path / "report.html"
    with pytest.raises(TypeError, match="RunView"):
        build({"run_id": "r"}, tmp_path / "x.html")
    with pytest.raises(TypeError, match="RunView.leaderboard must be a pandas DataFrame"):
        build(RunView("r", leaderboard=[{"strategy": "a"}]), tmp_path / "x.html")
    with pytest.raises(TypeError, match="run_id"):
        RunView(run_id="")
    with pytest.raises(QuantfleetError, match="top must be a positive int"):
        build(RunView("r"), tmp_path / "x.html", top=0)


def test_a_broken_part_costs_only_its_section(tmp_path):
    view = RunView("r", heatmap=pd.DataFrame({"a": ["not", "numbers"]}),
                   speedup={"speedup": 2.0, "workers": 4})
    with pytest.warns(UserWarning, match="latency"):
        page = build(view, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Could not render this section" in _section(page, "latency")
    assert "2.00× faster" in _section(page, "speedup")


def test_equity_falls_back_to_best_total_return_without_leaderboard(tmp_path):
    idx = pd.bdate_range("2022-01-03", periods=50)
    r = pd.DataFrame({"a/X": 0.01, "b/X": -0.01, "c/X": 0.0}, index=idx)
    page = build(RunView("r", oos_returns=r), tmp_path / "r.html", top=2).read_text()
    eq = _section(page, "equity")
    assert "a/X" in eq and "c/X" in eq and "b/X" not in eq
    assert "no leaderboard match" in eq


def test_overfit_thresholds_match_research():
    from quantfleet.research import overfit

    assert (build_mod.DSR_GOOD, build_mod.DSR_LUCK, build_mod.PBO_GOOD, build_mod.PBO_BAD) == (
        overfit.DSR_GOOD, overfit.DSR_LUCK, overfit.PBO_GOOD, overfit.PBO_BAD)


def test_runview_parts_are_all_persisted():
    import dataclasses

    names = {f.name for f in dataclasses.fields(RunView)}
    assert names == {"run_id", *view_mod._JSON_PARTS, *view_mod._FRAME_PARTS,
                     "portfolio_weights"}


@pytest.fixture
def store():
    import uuid

    from quantfleet.store import Store

    s = Store.open(f"memory://view-{uuid.uuid4().hex}")
    yield s
    s.fs.rm(s._root, recursive=True)


def test_save_load_round_trip(store):
    view = realistic_view()
    view.leaderboard["params"] = [{"fast": i, "slow": 2 * i} if i % 2 else {"window": i}
                                  for i in range(len(view.leaderboard))]
    view.utilisation.columns = pd.date_range("2025-03-01 02:00", periods=30, freq="30s")
    ref = save_view(view, store)
    assert ref.kind == "report_view"
    back = load_view(store, ref)
    assert back.run_id == view.run_id
    for name in view_mod._JSON_PARTS:
        assert json.loads(json.dumps(getattr(back, name))) == json.loads(
            json.dumps(getattr(view, name))), name
    for name in view_mod._FRAME_PARTS:
        pd.testing.assert_frame_equal(getattr(back, name), getattr(view, name),
                                      check_freq=False, obj=name)
    assert list(back.portfolio_weights) == list(view.portfolio_weights)
    for p, df in view.portfolio_weights.items():
        pd.testing.assert_frame_equal(back.portfolio_weights[p], df, check_freq=False)
    # integer column labels come back as integers too
    ref = save_view(RunView("r", heatmap=pd.DataFrame([[1.0, 2.0]], columns=[3, 4])), store)
    assert list(load_view(store, ref).heatmap.columns) == [3, 4]


def test_the_cpcv_section(tmp_path):
    view = realistic_view()
    page = build(view, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Combinatorial purged cross-validation" in page
    assert "6 groups, 2 tested per split, embargo 5 bars: 15 splits, 5 out-of-sample" in page
    sec = page[page.index('id="cpcv"'):]
    sec = sec[:sec.index("</table>")]
    assert sec.count("<tr>") == 1 + 2 and "—" in sec  # header, two pairs; NaN shown as n/a
    view.cpcv = None
    assert 'id="cpcv"' not in build(view, tmp_path / "s.html").read_text(encoding="utf-8")


def test_save_load_of_an_empty_view(store):
    assert load_view(store, save_view(RunView("only-id"), store)) == RunView("only-id")


def test_load_errors_name_the_fix(store):
    with pytest.raises(QuantfleetError, match=r"not a report view.*quantfleet report RUN"):
        load_view(store, store.put_json({"run_id": "x"}, kind="report_view"))
    with pytest.raises(TypeError, match="RunView.heatmap must be a pandas DataFrame"):
        save_view(RunView("r", heatmap=[1, 2]), store)


def test_weights_plot_keeps_held_columns_and_sums_the_rest():
    from quantfleet.report.build import _MAX_WEIGHT_SERIES, _top_weights

    rng = np.random.default_rng(1)
    n = _MAX_WEIGHT_SERIES + 10
    w = pd.DataFrame(rng.dirichlet(np.ones(n), size=12), columns=[f"s/a{i}" for i in range(n)])
    w.iloc[:, :5] = 0.0  # never held
    w = w.div(w.sum(axis=1), axis=0)
    got = _top_weights(w)
    assert list(got.columns[:-1]) == list(
        w.iloc[:, 5:].mean().sort_values(ascending=False, kind="stable").index[
            :_MAX_WEIGHT_SERIES])
    assert got.columns[-1] == "other"
    np.testing.assert_allclose(got.sum(axis=1), 1.0)
    small = w.iloc[:, :8]
    assert list(_top_weights(small).columns) == list(small.columns[5:])


def test_the_verdict_comes_first_and_holds_the_answers(full_page):
    view = realistic_view()
    top = view.leaderboard.iloc[0]
    v = _section(full_page, "verdict")
    assert full_page.index('<section id="verdict">') < full_page.index('<section id="leaderboard">')
    assert f"<b>{top['strategy']}/{top['asset']}</b>" in v
    assert f'id="bh">{build_mod.fmt(float(top["bh_sharpe"]))}</b>' in v
    assert f"{build_mod.fmt(float(top['oos_sharpe']))}</b> vs buy-and-hold" in v
    # DSR/PBO in words, with the research thresholds
    assert "DSR 0.97: unlikely to be luck</span> as the best of 994 trials" in v
    assert "PBO 0.18: holds up out of sample" in v
    # every profile against equal weight, and the buy-and-hold benchmark
    for p in ("hrp", "max_sharpe", "equal_weight", "buy-and-hold"):
        assert f"<th>{p}</th>" in v, p
    assert "Sharpe − equal weight" in v and "+0.00" in v
    assert "4.14× faster" in v  # the speed-up section's own renderer, in brief
    assert "approximate list prices" in v and "of 2024-06-01" in v
    assert "<svg" not in v  # the brief speed-up draws no figure


def test_leaderboard_top_20_one_line_each_the_rest_behind_a_toggle(full_page):
    lb = _section(full_page, "leaderboard")
    board = lb.split("</table>")[0]
    assert board.count("<tr>") == 1 + 20  # header + the synthetic board's 20 rows
    assert "<details><summary>The other" not in lb  # nothing left to toggle
    assert "pair_verdict" not in lb  # verdicts are on hover (title), not a six-line column


def test_leaderboard_toggle_holds_the_rest(tmp_path):
    import pandas as pd

    view = realistic_view()
    view.leaderboard = pd.concat([view.leaderboard] * 3, ignore_index=True)
    lb = _section(build(view, tmp_path / "r.html").read_text(encoding="utf-8"), "leaderboard")
    shown, rest = lb.split("<details>", 1)
    assert shown.count("<tr>") == 21 and "The other 40 rows" in rest
    assert rest.split("</details>")[0].count("<tr>") == 41


def test_equity_on_a_log_axis_with_buy_and_hold(full_page):
    eq = _section(full_page, "equity")
    assert "(log scale)" in eq and "on a log axis" in eq
    view = realistic_view()
    for a in dict.fromkeys(view.leaderboard["asset"].head(5)):
        assert f"buy-and-hold {a}" in eq, a


def test_cost_is_labelled_with_catalog_date_and_assumptions(full_page):
    from quantfleet.observe.cost import load_catalog

    cat = load_catalog()
    c = _section(full_page, "cost")
    assert (f"Simulated from quantfleet/observe/instances.json (bundled) v{cat['version']} of "
            f"{cat['date']}, approximate list prices") in c
    for k in ("start-up per node (s)", "idle tail billed per node (s)",
              "vCPU speed (x one local core)", "minimum billed per node (s)"):
        assert k in c, k


def test_a_view_recorded_before_cost_labels_says_so(tmp_path):
    view = realistic_view()
    view.cost_assumptions = None
    c = _section(build(view, tmp_path / "r.html").read_text(encoding="utf-8"), "cost")
    assert "price catalog of unknown date" in c


def test_workers_are_named_by_node_and_index(full_page):
    u = _section(full_page, "utilisation")
    assert "node 1 / worker 3" in u and "ab" * 28 in u  # the full id only in the id table
