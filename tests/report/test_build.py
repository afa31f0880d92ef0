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

IDS = ["summary", "lineage", "leaderboard", "equity", "evolution", "portfolio", "latency",
       "utilisation", "cost", "speedup"]


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
    assert "Plotly" not in page  # no figures, so no plotly.js either
    assert "r-empty" in page


def test_full_view_has_every_section_filled(full_page):
    for sid in IDS:
        body = _section(full_page, sid)
        assert "not part of this run" not in body.lower(), sid
        assert "Could not render" not in body, sid
    assert 'class="plotly-graph-div"' in _section(full_page, "equity")


def test_self_contained_plotly_inline_once(full_page):
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    assert full_page.count(js[:200]) == 1 and js in full_page
    # nothing fetched from anywhere: no external scripts, stylesheets, fonts or images
    assert not re.search(r'<script[^>]+src=', full_page)
    assert "<link" not in full_page and "<img" not in full_page
    assert "@import" not in full_page and "cdn.plot.ly" not in full_page.replace(js, "")


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
    # figure labels are HTML-escaped before plotly (which renders some tags) sees them, so the
    # trace name in the figure JSON is the entity form, not a raw (JSON-escaped) tag
    assert "&lt;script&gt;alert('x')&lt;\\u002fscript&gt;\\u002f" in page
    assert "\\u003cscript" not in page


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
    assert "a/X" in eq and "c/X" in eq and "b/X" not in eq.split("</div></div>")[-1]
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
