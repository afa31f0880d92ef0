"""`make bench`: quantfleet's execution options against backtesting.py, checked from outside.

Cases: strategies {sma_cross, sma_trend, donchian} x data {S&P 500, NASDAQ, two 5,000-bar
daily GBMs with gaps (60 % and 150 % annual vol)} x execution {next_open; + stop_loss; + take_profit; + both; + trailing_stop;
+ all three} x fees {0, 10 bps}, long-only. Per case:

- quantfleet: ``quantfleet.research.backtest.backtest(..., execution=Execution(...))``, the
  public API the ``quantfleet backtest`` command calls (one case per strategy is also run
  through the CLI with ``--fill next_open --stop-loss ... --take-profit ... --json`` and must
  print the same total return);
- backtesting.py *as usually written*: the rule as ``self.I`` indicators (so ``next()`` starts
  one bar after they are all defined), ``buy(sl=close*(1-sl), tp=close*(1+tp))`` at the signal
  bar, re-entry whenever flat and the signal is on;
- backtesting.py *aligned*: the same target signal (computed here with pandas from the rules in
  src/quantfleet/strategies, not with quantfleet's code) read by bar index with no indicator, so
  ``next()`` starts at bar 1; the stop and target from the fill price: with ``next_open`` set on
  the entry order from the next open (read ahead here; written with ``Order._replace`` after
  backtesting.py's check of the levels against the signal close), so backtesting.py checks them
  in the entry bar already, as quantfleet does (the whole entry bar follows the fill); and
  re-entry only after the signal has been off (quantfleet's fresh-entry rule). backtesting.py
  has no trailing stop of its own: the entry order's stop is the nearer of the stop loss and
  (fill price) x (1 - trailing_stop), and at each close the trade's stop is raised to (highest
  high since the entry fill) x (1 - trailing_stop), so it acts from the next bar, in every
  variant;
- *explained*: the aligned result times ``(1 - f^2)^entries``, which undoes backtesting.py's
  commission convention (an entry buys ``cash / (price (1 + f))``: equity ``E/(1+f)`` where
  quantfleet leaves ``E(1-f)``; exits are the same), and times ``open / stop`` for each bar
  that opened beyond the target and then reached the stop (backtesting.py processes the stop
  order first and fills at the stop; quantfleet fills the target at the open, the bar's first
  price). What remains is whole-share rounding (cash 1e15: ~1e-12 per trade). Every case must
  stay within ``TOL`` with the same entry count, or the script exits 1.

Writes the ``bt-exec`` section of docs/BENCHMARKS.md and bench/.out/bt_exec.json.

Usage: bench/.venv/bin/python bench/bt_exec.py [--quick] [--no-doc]
(with PYTHONPATH=src from the checkout whose quantfleet is measured)
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar (before tqdm import)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from docsection import logger, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / ".out" / "bt_exec.json"
log = logger("bt-exec")

CASH = 1e15          # whole-share rounding ~ price / 1e15 of equity per trade
TOL = 1e-9           # |aligned, commission-corrected equity ratio - 1| allowed per case
FEES_BPS = (0.0, 10.0)
DATA = {
    "sp500": "sp500_ohlcv",
    "nasdaq": "nasdaq_ohlcv",
    "gbm": "synthetic:gbm?bars=5000&assets=1&seed=7&vol=0.6&freq=1D",
    "gbm_wild": "synthetic:gbm?bars=5000&assets=1&seed=11&vol=1.5&freq=1D",
}
QUICK = ("nasdaq", "gbm_wild")
STRATEGIES = {
    "sma_cross": {"fast": 20, "slow": 100},
    "sma_trend": {"window": 50},
    "donchian": {"entry": 20, "exit": 10},
}
# (label, fill, stop_loss, take_profit, trailing_stop)
OPTIONS = (
    ("next_open", "next_open", None, None, None),
    ("next_open + sl 4%", "next_open", 0.04, None, None),
    ("next_open + tp 8%", "next_open", None, 0.08, None),
    ("next_open + sl 4% + tp 8%", "next_open", 0.04, 0.08, None),
    ("next_open + trail 5%", "next_open", None, None, 0.05),
    ("next_open + sl 4% + tp 8% + trail 6%", "next_open", 0.04, 0.08, 0.06),
    ("close + sl 4% + tp 8%", "close", 0.04, 0.08, None),
    ("close + sl 4% + tp 8% + trail 6%", "close", 0.04, 0.08, 0.06),
)
CLI_OPTION = "next_open + sl 4% + tp 8% + trail 6%"  # also run through the CLI (sp500, 10 bps)


# --- the rules, written again with pandas (docstrings of src/quantfleet/strategies/*.py) ------

def signal(name: str, frame: pd.DataFrame, p: dict) -> tuple[np.ndarray, int]:
    """Target position (bool: long) decided at each bar's close, and the first bar the rule is
    defined at (earlier bars are flat)."""
    close = frame["Close"]
    if name == "sma_cross":
        f, s = close.rolling(p["fast"]).mean(), close.rolling(p["slow"]).mean()
        return (f > s).to_numpy(), max(p["fast"], p["slow"]) - 1
    if name == "sma_trend":
        return (close > close.rolling(p["window"]).mean()).to_numpy(), p["window"] - 1
    if name == "donchian":
        # long on a close above the highest high of the previous `entry` bars; out on a close
        # below the lowest low of the previous `exit` bars; exits checked before entries
        he = frame["High"].rolling(p["entry"]).max().shift(1).to_numpy()
        lx = frame["Low"].rolling(p["exit"]).min().shift(1).to_numpy()
        x = close.to_numpy()
        warm = max(p["entry"], p["exit"])
        out = np.zeros(len(x), dtype=bool)
        state = False
        for t in range(warm, len(x)):
            if state and x[t] < lx[t]:
                state = False
            if not state and x[t] > he[t]:
                state = True
            out[t] = state
        return out, warm
    raise ValueError(name)


# --- backtesting.py ------------------------------------------------------------------------

# The steps from backtesting.py as usually written to quantfleet's rules, one switch at a time
# (each step keeps the ones before it): (label, switches).
STEPS = (
    ("usual", {}),
    ("start at bar 1", {"early": True}),
    ("fresh entry", {"early": True, "fresh": True}),
    ("sl/tp from fill", {"early": True, "fresh": True, "arm": True}),
)


def _strategy_class():
    from backtesting import Strategy

    class Rule(Strategy):
        """The target signal ``sig`` traded with backtesting.py's orders; the switches:

        early  : read ``sig`` by bar index with no ``self.I`` indicator, so ``next()`` starts at
                 bar 1; otherwise the signal is an indicator NaN for its ``warm`` bars, and
                 backtesting.py starts one bar after it is defined
        fresh  : after a stop/target exit, re-enter only once the signal has been off
                 (otherwise whenever flat and the signal is on)
        arm    : set stop/target on the entry order from its fill price (``peek``: the next
                 open), so they act in the entry bar already; otherwise ``buy(sl=, tp=)``
                 from the signal bar's close, acting on the entry bar too
        """
        sig = None
        warm = 0
        sl = 0.0
        tp = 0.0
        ts = 0.0
        on_close = False
        n_bars = 0
        peek = None   # next bar's open per bar: stop/target from the coming fill price
        early = False
        fresh = False
        arm = False

        def init(self):
            if not self.early:
                s = self.sig.astype(float)
                s[:self.warm] = np.nan
                self.s = self.I(lambda: s, name="signal")
            self.held = False      # an entry was ordered and no exit since
            self.blocked = False   # a stop/target exit happened: wait for the signal to go off
            self.rule_exits = 0
            self.stop_exits = 0    # exits at (or, at the open, beyond) the stop or trailing stop
            self.target_exits = 0  # exits at (or beyond) the take-profit level
            self.gap_exits = 0     # of both, those filled at the open, beyond the level
            self.both_exits = 0    # stop exits on a bar whose high reached the target too
            self.open_target_stops = 0     # of those, bars that opened beyond the target
            self.open_target_factor = 1.0  # product of open / stop fill over them
            self.last_bar_fills = 0  # orders placed at the last bar (never filled here)
            self.last_bar_entries = 0
            self.entry_bar_exits = 0  # stop/target exits in the bar of the entry fill

        def next(self):
            on = bool(self.sig[len(self.data) - 1]) if self.early else self.s[-1] > 0.5
            if self.held and not self.position:   # a stop or target closed the trade
                self.held = False
                self.blocked = self.fresh
                last = self.closed_trades[-1]
                self.entry_bar_exits += last.exit_bar == last.entry_bar
                if last.sl and last.exit_price <= last.sl * (1 + 1e-12):
                    self.stop_exits += 1
                    self.gap_exits += last.exit_price < last.sl * (1 - 1e-12)
                    self.both_exits += bool(last.tp) and self.data.High[-1] >= last.tp
                    if last.tp and self.data.Open[-1] >= last.tp:
                        # the bar opened beyond the target and reached the stop too: the
                        # stop order goes first here, quantfleet fills the target at the open
                        self.open_target_stops += 1
                        self.open_target_factor *= self.data.Open[-1] / last.exit_price
                else:
                    self.target_exits += 1
                    self.gap_exits += last.exit_price > last.tp * (1 + 1e-12)
            if self.position and self.ts:
                # trailing stop at (highest price since the entry fill) x (1 - ts): the entry
                # bar's high with a next-open fill, the fill price with a close fill (that
                # bar's high came before it); set at this close, it acts from the next bar
                for tr in self.trades:
                    if self.on_close:
                        m = max([tr.entry_price, *self.data.High[tr.entry_bar + 1:]])
                    else:
                        m = float(np.max(self.data.High[tr.entry_bar:]))
                    level = m * (1 - self.ts)
                    if tr.sl is None or level > tr.sl:
                        tr.sl = level
            if not on:
                self.blocked = False
                if self.position:
                    # Trade.close() puts its order first in the queue: the exit fills at the
                    # next open before a live stop/target is looked at, as in quantfleet
                    self.position.close()
                    self.rule_exits += 1
                    self.held = False
                    self.last_bar_fills += len(self.data) == self.n_bars
            elif not self.position and not self.held and not self.blocked:
                if self.arm:
                    # levels from the fill price (the next open, read ahead), so that
                    # backtesting.py checks them in the entry bar already; written after its
                    # check of the levels against the signal close, which a gap can fail
                    order = self.buy()
                    p = self.peek[len(self.data) - 1]
                    if p == p:  # an order at the last bar never fills
                        stops = [p * (1 - x) for x in (self.sl, self.ts) if x]
                        order._replace(sl_price=max(stops) if stops else None,
                                       tp_price=p * (1 + self.tp) if self.tp else None)
                else:
                    c = self.data.Close[-1]
                    stop = max(c * (1 - self.sl) if self.sl else 0.0,
                               c * (1 - self.ts) if self.ts and self.on_close else 0.0)
                    self.buy(sl=stop or None, tp=c * (1 + self.tp) if self.tp else None)
                self.held = True
                self.last_bar_fills += len(self.data) == self.n_bars
                self.last_bar_entries += len(self.data) == self.n_bars

    return Rule


_RULE = None


def run_bt(frame, sig, warm, fill, sl, tp, ts, fee, **switches) -> dict:
    """backtesting.py's final equity (per unit of cash), entries and exits by kind."""
    nxt = np.append(frame["Open"].to_numpy()[1:], np.nan)
    global _RULE
    from backtesting import Backtest

    if _RULE is None:
        _RULE = _strategy_class()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_close = fill == "close"
        if on_close:
            # filled at the signal bar's close, `buy(sl=, tp=)` from that close already is
            # quantfleet's rule: set from the fill price, checked from the next bar
            switches = {**switches, "arm": False}
        bt = Backtest(frame, _RULE, cash=CASH, commission=fee, trade_on_close=on_close,
                      exclusive_orders=True, finalize_trades=False)
        stats = bt.run(sig=sig, warm=warm, sl=sl or 0.0, tp=tp or 0.0, ts=ts or 0.0,
                       on_close=on_close, n_bars=len(frame), peek=nxt, **switches)
    st = stats["_strategy"]
    broker = st._broker
    return {"equity": float(stats["Equity Final [$]"]) / CASH,
            "entries": len(broker.closed_trades) + len(broker.trades),
            "rule_exits": int(st.rule_exits), "stop_exits": int(st.stop_exits),
            "target_exits": int(st.target_exits), "gap_exits": int(st.gap_exits),
            "both_exits": int(st.both_exits), "open_target_stops": int(st.open_target_stops),
            "open_target_factor": float(st.open_target_factor),
            "last_bar_fills": int(st.last_bar_fills), "last_bar_entries": int(st.last_bar_entries),
            "entry_bar_exits": int(st.entry_bar_exits)}


# --- quantfleet ----------------------------------------------------------------------------

def run_qf(market, name, params, fill, sl, tp, ts, fee_bps) -> dict:
    from quantfleet.backtest.terms import Costs, Execution
    from quantfleet.research.backtest import backtest

    ex = Execution(fill=fill, stop_loss=sl, take_profit=tp, trailing_stop=ts)
    row = backtest(market, name, params, Costs(fee_bps=fee_bps), execution=ex)[0]
    return {"equity": 1.0 + row["total_return"], "entries": int(row["n_trades"])}


def run_cli(python, spec, name, params, fill, sl, tp, ts, fee_bps) -> float:
    cmd = [python, "-m", "quantfleet.cli", "backtest", spec, "-s", name, "--no-store",
           "--json", "--fee-bps", str(fee_bps), "--fill", fill]
    for k, v in params.items():
        cmd += ["-p", f"{k}={v}"]
    if sl:
        cmd += ["--stop-loss", str(sl)]
    if tp:
        cmd += ["--take-profit", str(tp)]
    if ts:
        cmd += ["--trailing-stop", str(ts)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {res.returncode}: {res.stderr.strip()}")
    data = json.loads(res.stdout)
    rows = data if isinstance(data, list) else [data]  # one asset: one object
    return float(rows[0]["total_return"])


# --- the run -------------------------------------------------------------------------------

def frame_of(md) -> pd.DataFrame:
    cols = {k.capitalize(): md.field(k)[0] for k in ("open", "high", "low", "close")}
    cols["Volume"] = np.zeros(md.n_bars)
    return pd.DataFrame(cols, index=pd.DatetimeIndex(md.timestamps))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two data sets, no CLI checks")
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--cli-python", default=str(ROOT / ".venv" / "bin" / "python"),
                    help="python with quantfleet installed for the CLI checks (default: "
                         ".venv's; the base install is enough)")
    a = ap.parse_args()
    from quantfleet.data import load

    t_start = time.perf_counter()
    data = {k: DATA[k] for k in QUICK} if a.quick else DATA
    cases = []
    for dname, spec in data.items():
        md = load(spec)
        md = md.select(assets=[md.assets[0]])
        frame = frame_of(md)
        for sname, params in STRATEGIES.items():
            sig, warm = signal(sname, frame, params)
            for label, fill, sl, tp, ts in OPTIONS:
                for fee_bps in FEES_BPS:
                    f = fee_bps / 1e4
                    bt = {lab: run_bt(frame, sig, warm, fill, sl, tp, ts, f, **sw) for lab, sw in STEPS}
                    al = bt[STEPS[-1][0]]
                    qf = run_qf(md, sname, params, fill, sl, tp, ts, fee_bps)
                    # a close fill at the last bar: quantfleet books it (its fee, its entry);
                    # backtesting.py never fills an order placed there
                    last = al["last_bar_fills"] if fill == "close" else 0
                    last_entries = al["last_bar_entries"] if fill == "close" else 0
                    corrected = (al["equity"] * (1.0 - f * f) ** al["entries"]
                                 * al["open_target_factor"] * (1.0 - f) ** last)
                    c = {
                        "data": dname, "bars": int(md.n_bars), "strategy": sname,
                        "params": params, "execution": label, "fill": fill, "stop_loss": sl,
                        "take_profit": tp, "trailing_stop": ts, "fee_bps": fee_bps,
                        "quantfleet": qf["equity"] - 1.0, "quantfleet_entries": qf["entries"],
                        "bt": {k: {**v, "total_return": v["equity"] - 1.0,
                                   "rel": v["equity"] / qf["equity"] - 1.0}
                               for k, v in bt.items()},
                        "bt_aligned_fee_corrected": corrected - 1.0,
                        "rel_corrected": corrected / qf["equity"] - 1.0,
                        "predicted_fee_term": (1.0 - f * f) ** -al["entries"] - 1.0,
                    }
                    c["last_bar_fills"] = last
                    c["ok"] = bool(abs(c["rel_corrected"]) <= TOL
                                   and qf["entries"] == al["entries"] + last_entries)
                    cases.append(c)
                    log(f"{dname} {sname} {label} {fee_bps:g}bps: qf {c['quantfleet']:+.6f} "
                        f"bt {al['equity'] - 1:+.6f} corrected rel {c['rel_corrected']:+.1e} "
                        f"entries {qf['entries']}/{al['entries']}"
                        + ("" if c["ok"] else "  <-- OVER TOLERANCE"))
    cli = []
    if not a.quick and not Path(a.cli_python).exists():
        log(f"--cli-python: {a.cli_python} does not exist; run `make install-test` (the "
            "project venv) or pass a python that has quantfleet installed")
        return 2
    if not a.quick:
        spec = DATA["sp500"]
        md = load(spec)
        for sname, params in STRATEGIES.items():
            api = next(c for c in cases if c["data"] == "sp500" and c["strategy"] == sname
                       and c["execution"] == CLI_OPTION and c["fee_bps"])
            tr = run_cli(a.cli_python, spec, sname, params, api["fill"], api["stop_loss"],
                         api["take_profit"], api["trailing_stop"], api["fee_bps"])
            cli.append({"strategy": sname, "cli_total_return": tr,
                        "api_total_return": api["quantfleet"],
                        "equal": tr == api["quantfleet"]})
            log(f"CLI {sname}: {tr!r} vs API {api['quantfleet']!r}")
    import backtesting

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": time.perf_counter() - t_start, "quick": a.quick, "tol": TOL, "cash": CASH,
        "versions": {"backtesting": backtesting.__version__, "python": platform.python_version(),
                     "pandas": pd.__version__, "numpy": np.__version__},
        "data": {k: v for k, v in data.items()}, "cases": cases, "cli": cli,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    if not a.no_doc:
        write_section("bt-exec", report(result))
    bad = [c for c in cases if not c["ok"]] + [c for c in cli if not c["equal"]]
    if bad:
        log(f"FAILED: {len(bad)} case(s) over tolerance {TOL:g} or with different entries / "
            f"CLI output ({OUT})")
        return 1
    log(f"all {len(cases)} cases within {TOL:g}; {time.perf_counter() - t_start:.0f} s")
    return 0


STEP_TEXT = {
    "usual": "the rule as `self.I` indicators, `buy(sl=close*(1-sl), tp=close*(1+tp))` at the "
             "signal bar, re-entry whenever flat and the signal is on",
    "start at bar 1": "the signal read by bar index, no indicator: `next()` starts at bar 1, "
                      "not one bar after the indicators are defined",
    "fresh entry": "after a stop/target exit, re-enter only once the signal has been off",
    "sl/tp from fill": "stop/target set from the fill price (`next_open`: on the entry order, "
                       "from the next open read ahead), so they act in the entry bar already "
                       "(*aligned*)",
}


def _pct(x: float) -> str:
    return f"{x * 100:+.2f} %"


def report(r: dict) -> str:
    cases = r["cases"]
    steps = [k for k, _ in STEPS]
    last = steps[-1]
    opts = ", ".join(f"`{lab}`" for lab, *_ in OPTIONS)
    lines = []
    a = lines.append
    a("## Execution options against backtesting.py")
    a("")
    a(f"`bench/bt_exec.py` ({'--quick, ' if r['quick'] else ''}{r['date']}, "
      f"{r['seconds']:.0f} s; backtesting {r['versions']['backtesting']}, "
      f"pandas {r['versions']['pandas']}, numpy {r['versions']['numpy']}): quantfleet's "
      "`Execution(fill=..., stop_loss=..., take_profit=..., trailing_stop=...)` "
      "through `quantfleet.research.backtest.backtest` (what `quantfleet backtest --fill ... "
      "--stop-loss ... --take-profit ... --trailing-stop ...` calls) against backtesting.py "
      "with `trade_on_close=False` for `next_open` (its default: market orders fill at the "
      "next open) and `trade_on_close=True` for `close`, `exclusive_orders=True`, "
      "`finalize_trades=False` (an open trade is marked to the last close without an exit "
      "fee, as quantfleet does) and cash "
      f"{r['cash']:.0e} (whole-share rounding ~1e-12 of equity a trade). Long-only; fees 0 and "
      "10 bps; data " + ", ".join(f"{k} `{v}`" for k, v in r["data"].items()) + "; "
      + ", ".join(f"{k} " + ", ".join(f"{n}={v}" for n, v in p.items())
                  for k, p in STRATEGIES.items())
      + f"; execution {opts}.")
    a("")
    a("backtesting.py trades the same target signal, computed here with pandas from the rules' "
      "docstrings (src/quantfleet/strategies), not with quantfleet's code. *rel* is "
      "backtesting.py's final equity / quantfleet's − 1. *usual*: backtesting.py as usually "
      "written; *aligned*: quantfleet's rules expressed with backtesting.py's orders (the steps "
      "between the two are the second table); *explained*: the aligned equity times "
      "`(1 − f²)^entries` (its commission convention), times `open / stop fill` for each "
      "bar that opened beyond the target and reached the stop too (its order queue), and with "
      "`close` fills times `1 − f` for an order at the last bar (never filled by "
      "backtesting.py; all three below). The bench exits 1, stopping `make bench`, when an *explained* residual exceeds "
      f"{r['tol']:.0e} or the entry counts differ (beyond a `close` fill at the last bar) in "
      "any case.")
    a("")
    a("| data | strategy | execution | fee | quantfleet | bt usual (rel) | bt aligned (rel) "
      "| explained rel | entries: qf / bt usual / bt aligned (+ at the last bar) "
      "| bt aligned exits: rule / stop "
      "/ target | of those at the open (gap) / stop with target in the bar / of those opened "
      "beyond the target |")
    a("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in cases:
        u, al = c["bt"]["usual"], c["bt"][last]
        a(f"| {c['data']} | {c['strategy']} | {c['execution']} | {c['fee_bps']:g} bps "
          f"| {_pct(c['quantfleet'])} | {_pct(u['total_return'])} ({u['rel']:+.1e}) "
          f"| {_pct(al['total_return'])} ({al['rel']:+.1e}) | {c['rel_corrected']:+.1e} "
          f"| {c['quantfleet_entries']} / {u['entries']} / {al['entries']}"
          + (f" (+{al['last_bar_entries']})" if c["fill"] == "close" and al["last_bar_entries"]
             else "") + " "
          f"| {al['rule_exits']} / {al['stop_exits']} / {al['target_exits']} "
          f"| {al['gap_exits']} / {al['both_exits']} / {al['open_target_stops']} |")
    a("")
    a("From backtesting.py as usually written to quantfleet's rules, one change at a time "
      "(each keeps the ones above it): max |rel| over the cases, and in how many cases the "
      "step moved the result by more than 1e-9. With `close` fills the last step changes "
      "nothing: `buy(sl=, tp=)` from the signal bar's close is already from the fill price, "
      "and backtesting.py checks it from the next bar.")
    a("")
    a("| step | what changes | max abs rel, next_open alone | max abs rel, with stops "
      "| cases moved |")
    a("| --- | --- | ---: | ---: | ---: |")
    prev = None
    for k in steps:
        plain = [abs(c["bt"][k]["rel"]) for c in cases if c["execution"] == OPTIONS[0][0]]
        stops = [abs(c["bt"][k]["rel"]) for c in cases if c["execution"] != OPTIONS[0][0]]
        moved = ("" if prev is None else
                 str(sum(abs(c["bt"][k]["equity"] / c["bt"][prev]["equity"] - 1) > 1e-9
                         for c in cases)))
        a(f"| {k} | {STEP_TEXT[k]} | {max(plain):.1e} | {max(stops):.1e} | {moved} |")
        prev = k
    corr_plain = [abs(c["rel_corrected"]) for c in cases if c["execution"] == OPTIONS[0][0]]
    corr_stops = [abs(c["rel_corrected"]) for c in cases if c["execution"] != OPTIONS[0][0]]
    a(f"| explained | × `(1 − f²)^entries` × `open / stop fill` on bars opening beyond the "
      f"target × `(1 − f)` for a `close` fill at the last bar | {max(corr_plain):.1e} "
      f"| {max(corr_stops):.1e} | |")
    n_ot = sum(c["bt"][last]["open_target_stops"] for c in cases)
    n_ot_cases = sum(c["bt"][last]["open_target_stops"] > 0 for c in cases)
    n_both = sum(c["bt"][last]["both_exits"] for c in cases)
    n_gap = sum(c["bt"][last]["gap_exits"] for c in cases)
    worst_ot = max(c["bt"][last]["open_target_factor"] for c in cases)
    ot_where = sorted({c["execution"] for c in cases if c["bt"][last]["open_target_stops"]})
    a("")
    a("What each residual is:")
    a("")
    a("- **one-bar-later start**: backtesting.py calls `next()` first one bar after every "
      "`self.I` indicator is defined, so a signal already on at the first defined bar enters "
      "a bar later than in quantfleet (the *start at bar 1* step; it moves only the cases "
      "whose signal was on at that bar).")
    a("- **fresh entry**: after a stop or target exit quantfleet waits for the signal to go off "
      "and on again; backtesting.py as usually written (`if signal and not self.position: "
      "self.buy()`) buys again at the next open: its larger entry counts, and most of the "
      "*usual* residual.")
    n_eb = sum(c["bt"][last]["entry_bar_exits"] for c in cases if c["fill"] == "next_open")
    a("- **stop/target reference** (`next_open`): a `buy(sl=, tp=)` in `next()` has to name "
      "prices before the fill, so as usually written they come from the signal bar's close; "
      "quantfleet's are fractions of the fill price (the next open). *aligned* writes the "
      "fill-price levels on the entry order (read ahead by the bench, after backtesting.py's "
      "check of the levels against the signal close, which a gap can fail). Both check them "
      "in the entry bar already (the whole bar follows a fill at its open; backtesting.py "
      "re-processes a new trade's orders in the bar it fills): "
      f"{n_eb} exits in the entry bar here. With `close` fills the two agree (the signal "
      "bar's close is the fill, checked from the next bar). Then both fill a stop or target "
      "at its level, or at the open when a later bar opens beyond it "
      f"({n_gap} such exits here), and take the stop when stop and target are both inside "
      f"one bar ({n_both} such bars here). The trailing stop is, in the entry bar of a "
      "`next_open` fill, (fill price) × `1 − trailing_stop` (the nearer of it and the stop "
      "loss on the entry order), then the stop raised at each close to (highest high since "
      "the entry fill, entry bar included) × `1 − trailing_stop`, acting from the next bar, "
      "in every variant: backtesting.py has none built in.")
    a("- **a bar that opens beyond the target and then reaches the stop**: backtesting.py "
      "queues stop orders first and fills at the stop; quantfleet fills the target at the open, "
      f"the bar's first price. {n_ot} such bars in {n_ot_cases} cases here"
      + (f" (executions {', '.join(ot_where)}; up to ×{worst_ot:.3f} of equity in one case)"
         if n_ot else "")
      + ", each worth `open / stop fill`; the *explained* column multiplies them out. Where the rule's exit fills at an open, both leave there before any stop or "
      "target (backtesting.py puts `Trade.close()` orders first in its queue).")
    a("- **commission convention**: backtesting.py sizes an entry as `cash / (price (1 + f))`, "
      "leaving equity `E/(1+f)` where quantfleet leaves `E(1−f)`; exits are the same. The "
      "aligned residual is then `(1−f²)^−entries − 1` (~1e-6 an entry at 10 bps, 0 at 0 bps); "
      "multiplied out, whole-share and float rounding remain.")
    n_last = sum(c["last_bar_fills"] > 0 for c in cases)
    a("- **end of data**: an open trade is marked to the last close without an exit fee by "
      "both. With `next_open`, an order decided at the last bar fills in neither. With "
      "`close`, quantfleet fills a decision at the last bar's close (its fee, and an entry "
      "counted) while backtesting.py never fills an order placed at the last bar: "
      f"{n_last} case(s) here, each `1 − f` of equity and at most one entry.")
    if r["cli"]:
        a("")
        _, fill, sl, tp, ts = next(o for o in OPTIONS if o[0] == CLI_OPTION)
        a("The CLI prints the same total return as the API (`quantfleet backtest sp500_ohlcv -s "
          f"NAME -p ... --fill {fill} --stop-loss {sl} --take-profit {tp} --trailing-stop "
          f"{ts} --fee-bps 10 --json`): "
          + "; ".join(f"{x['strategy']} {x['cli_total_return']:.12f} "
                      f"({'equal' if x['equal'] else 'DIFFERENT from ' + repr(x['api_total_return'])})"
                      for x in r["cli"]) + ".")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
