"""Cost model: hand-computed cases on a round-number catalog; the bundled catalog."""

from __future__ import annotations

import math

import pytest

from quantfleet.errors import QuantfleetError
from quantfleet.observe.cost import (
    break_even,
    get_instance,
    load_catalog,
    run_inputs,
    simulate,
    what_if,
)
from tests.observe.spanset import decomposition_case

# $3.60/h = $0.001/s per node; spot half of it
CAT = {"version": 1, "date": "test", "source": "test", "instances": {
    "t.big": {"vcpus": 4, "memory_gib": 8, "on_demand_usd_h": 3.6, "spot_usd_h": 1.8,
              "min_billed_s": 60}}}
RUN = {"cpu_s": 800.0, "wall_s": 300.0, "workers_local": 4}  # serial part 300 - 800/4 = 100 s
BARE = {"startup_s": 0.0, "idle_tail_s": 0.0, "catalog": CAT}


def test_one_node():
    r = simulate(**RUN, instance="t.big", nodes=1, **BARE)
    assert r["serial_s"] == 100.0 and r["compute_s"] == 300.0 and r["wall_s"] == 300.0
    assert r["billed_s"] == 300.0 and r["cost_usd"] == pytest.approx(0.3)
    assert r["workers"] == 4 and r["speedup"] == pytest.approx(1.0)


def test_n_nodes_and_spot():
    r = simulate(**RUN, instance="t.big", nodes=4, **BARE)
    assert r["compute_s"] == 150.0 and r["cost_usd"] == pytest.approx(0.6)
    assert r["speedup"] == pytest.approx(2.0)
    s = simulate(**RUN, instance="t.big", nodes=4, spot=True, **BARE)
    assert s["cost_usd"] == pytest.approx(0.3) and s["wall_s"] == r["wall_s"]


def test_startup_and_idle_tail_are_billed():
    r = simulate(**RUN, instance="t.big", nodes=2, startup_s=30, idle_tail_s=60, catalog=CAT)
    assert r["wall_s"] == 230.0  # 30 start-up + 100 serial + 800 / 8
    assert r["billed_s"] == 290.0 and r["cost_usd"] == pytest.approx(0.58)


def test_minimum_billing():
    r = simulate(4.0, 1.0, 4, "t.big", 1, **BARE)
    assert r["compute_s"] == 1.0 and r["billed_s"] == 60.0 and r["cost_usd"] == pytest.approx(0.06)
    r = simulate(4.0, 1.0, 4, "t.big", 1, min_billed_s=0, **BARE)
    assert r["cost_usd"] == pytest.approx(0.001)


def test_parallel_fraction_and_vcpu_speed():
    r = simulate(**RUN, instance="t.big", nodes=1, parallel_fraction=0.5, **BARE)
    assert r["serial_s"] == 150.0 and r["compute_s"] == 350.0
    r = simulate(**RUN, instance="t.big", nodes=1, vcpu_speed=0.5, **BARE)
    assert r["compute_s"] == 600.0


def test_what_if_table():
    t = what_if(**RUN, instance="t.big", nodes=[1, 2, 4], laptop_usd_per_h=36.0, **BARE)
    assert list(t["nodes"]) == [0, 1, 2, 4]
    assert t.loc[0, "cost_usd"] == pytest.approx(3.0) and t.loc[0, "wall_s"] == 300.0
    assert list(t["wall_s"]) == [300.0, 300.0, 200.0, 150.0]
    assert list(t["cost_usd"].round(6)) == [3.0, 0.3, 0.4, 0.6]


def test_break_even_hand_computed():
    b = break_even(**RUN, instance="t.big", nodes=[1, 2, 4, 8], **BARE)
    rows = {r["nodes"]: r for r in b["rows"]}
    assert rows[1]["saved_s"] == 0 and math.isinf(rows[1]["usd_per_hour_saved"])
    assert rows[2]["usd_per_hour_saved"] == pytest.approx(14.4)    # $0.40 for 100 s
    assert rows[4]["usd_per_hour_saved"] == pytest.approx(14.4)    # $0.60 for 150 s
    assert rows[8]["usd_per_hour_saved"] == pytest.approx(3600 / 175)  # $1.00 for 175 s
    assert b["best_nodes"] == 2 and b["instance"] == "t.big"       # tie -> fewer nodes
    v = break_even(**RUN, instance="t.big", nodes=[1, 2, 4, 8], value_usd_per_h=15.0, **BARE)
    assert v["pays_off_from"] == 2 and v["best_net_nodes"] == 4
    cheap = break_even(**RUN, instance="t.big", nodes=[1, 2, 4, 8], value_usd_per_h=10.0,
                       **BARE)
    assert cheap["pays_off_from"] is None and cheap["best_net_nodes"] is None
    budget = break_even(**RUN, instance="t.big", nodes=[1, 2, 4, 8], budget_usd=0.5, **BARE)
    assert budget["best_nodes"] == 2
    # an amortized laptop at $36/h costs $3 for the run: every faster N is also cheaper
    dear = break_even(**RUN, instance="t.big", nodes=[1, 2, 4, 8], laptop_usd_per_h=36.0,
                      **BARE)
    assert dear["best_nodes"] == 8
    none = break_even(**RUN, instance="t.big", nodes=[1], **BARE)
    assert none["best_nodes"] is None


def test_bundled_catalog():
    cat = load_catalog()
    assert cat["version"] >= 1 and cat["date"] and "approximate" in cat["source"].lower()
    for name in ("c7i.large", "c7i.xlarge", "c7i.2xlarge", "c7i.4xlarge", "c6a.8xlarge",
                 "m7i.2xlarge", "c3-standard-8", "F8s_v2"):
        e = get_instance(name, cat)
        assert e["vcpus"] >= 2 and e["memory_gib"] > 0
        assert 0 < e["spot_usd_h"] < e["on_demand_usd_h"]
    assert get_instance("C7I.LARGE", cat)["name"] == "c7i.large"


def test_bad_input():
    with pytest.raises(QuantfleetError, match=r"unknown instance type 'c7i\.2xlarg'; did you "
                                              r"mean c7i\.2xlarge"):
        get_instance("c7i.2xlarg")
    with pytest.raises(QuantfleetError, match="nodes must be a whole number >= 1"):
        simulate(**RUN, instance="t.big", nodes=0, **BARE)
    with pytest.raises(QuantfleetError, match="parallel_fraction must be in"):
        simulate(**RUN, instance="t.big", nodes=1, parallel_fraction=1.5, **BARE)
    with pytest.raises(QuantfleetError, match="wall_s must be > 0"):
        simulate(1.0, 0.0, 1, "t.big", 1, **BARE)
    with pytest.raises(QuantfleetError, match="no spot price"):
        simulate(**RUN, instance={"vcpus": 2, "on_demand_usd_h": 1.0}, nodes=1, spot=True,
                 **BARE)
    with pytest.raises(QuantfleetError, match="price list '/nonexistent/instances.json' not "
                                              "found"):
        load_catalog("/nonexistent/instances.json")


GOOD_ENTRY = {"vcpus": 8, "memory_gib": 16, "on_demand_usd_h": 0.4, "spot_usd_h": 0.1}


@pytest.mark.parametrize("doc, field", [
    ("{not json", "is not valid JSON"),
    ({"version": 1, "source": "s", "instances": {"a": GOOD_ENTRY}}, "lacks 'date'"),
    ({"version": 1, "date": 20240601, "source": "s", "instances": {"a": GOOD_ENTRY}},
     "'date' must be a date string"),
    ({"version": 1, "date": "d", "source": "s", "instances": {}}, "'instances' is empty"),
    ({"version": 1, "date": "d", "source": "s", "instances": {"a": {"vcpus": 8}}},
     "instances.a lacks memory_gib, on_demand_usd_h"),
    ({"version": 1, "date": "d", "source": "s",
      "instances": {"a": {**GOOD_ENTRY, "spot_usd_h": "low"}}},
     "instances.a.spot_usd_h must be a number >= 0 (got 'low')"),
    ({"version": 1, "date": "d", "source": "s",
      "instances": {"a": {**GOOD_ENTRY, "vcpus": 0}}}, "instances.a.vcpus must be >= 1"),
])
def test_a_bad_price_list_names_the_file_and_the_field(tmp_path, doc, field):
    import json

    p = tmp_path / "prices.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(QuantfleetError) as e:
        load_catalog(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and field in msg, msg


def test_describe_labels_the_catalog_and_lists_the_assumptions(tmp_path):
    import json

    from quantfleet.observe.cost import IDLE_TAIL_S, STARTUP_S, describe

    info = describe(load_catalog(), "c7i.2xlarge", spot=True)
    assert info["label"].startswith("simulated from quantfleet/observe/instances.json (bundled) "
                                    "v1 of 2024-06-01, approximate list prices; assumes 90 s "
                                    "start-up and 60 s idle tail per node")
    a = info["assumptions"]
    assert a["start-up per node (s)"] == STARTUP_S and a["idle tail billed per node (s)"] == \
        IDLE_TAIL_S and a["vCPU speed (x one local core)"] == 1.0
    assert a["price"] == "spot c7i.2xlarge $0.145/h"
    # the defaults the label states are the defaults simulate uses
    import inspect

    sig = inspect.signature(simulate).parameters
    assert (sig["startup_s"].default, sig["idle_tail_s"].default,
            sig["vcpu_speed"].default) == (STARTUP_S, IDLE_TAIL_S, 1.0)
    p = tmp_path / "mine.json"
    p.write_text(json.dumps({"version": "q4", "date": "2026-10-01", "source": "our quote",
                             "instances": {"box": GOOD_ENTRY}}))
    mine = describe(load_catalog(p), "box")
    assert mine["label"].startswith(f"simulated from {p} vq4 of 2026-10-01, approximate list "
                                    "prices")
    assert mine["catalog"]["source"] == "our quote"


def test_run_inputs_from_spans():
    inp = run_inputs(decomposition_case(), 10.0, 2)
    assert inp["cpu_s"] == pytest.approx(0.9 * 12.0) and inp["workers_local"] == 2
