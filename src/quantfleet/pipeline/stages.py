"""The pipeline's stages as plain functions: each reads its inputs from the store, runs one
research step (heavy fan-out on the run's Executor) and writes its outputs back.

Prefect wraps these (flow.py) for retries, caching and state; they never need Prefect
themselves, so a stage is testable and callable on its own (DESIGN.md convention 7).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from quantfleet.observe.spans import Span, SpanRecorder
from quantfleet.pipeline.config import PipelineConfig

__all__ = ["STAGES", "RunContext", "code_version", "stage_key"]


def code_version() -> str:
    """Package version plus a hash of the installed quantfleet sources (changes with any edit)."""
    import quantfleet

    root = Path(quantfleet.__file__).parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return f"{quantfleet.__version__}+{h.hexdigest()[:12]}"


def stage_key(stage: str, inputs: dict[str, str], settings: dict[str, Any], code: str) -> str:
    """Cache key of a stage: its name, input artifact hashes, settings and code version."""
    blob = json.dumps({"stage": stage, "inputs": inputs, "settings": settings, "code": code},
                      sort_keys=True, default=str)
    return f"{stage}-{hashlib.sha256(blob.encode()).hexdigest()[:32]}"


@dataclass
class RunContext:
    """What every stage of one run shares: config, store, executor (started on first use)."""

    config: PipelineConfig
    run_id: str
    run_dir: Path
    store: Any
    spans: SpanRecorder | None = None
    log: Any = print
    _executor: Any = None

    def __post_init__(self) -> None:
        if self.spans is None:
            self.spans = SpanRecorder()

    @cached_property
    def code(self) -> str:
        return code_version()

    @property
    def executor(self) -> Any:
        """The run's Executor; Ray starts only if a stage actually computes."""
        if self._executor is None:
            from quantfleet.compute import make_executor

            ex = self.config.executor
            self._executor = make_executor(ex.kind, workers=ex.workers,
                                           ray_address=ex.ray_address, recorder=self.spans)
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    @cached_property
    def market(self) -> Any:
        from quantfleet.data import load

        m = load(self.config.data.source)
        if self.config.data.assets:
            m = m.select(self.config.data.assets)
        return m

    def costs(self) -> Any:
        from quantfleet.research.costs import Costs

        return Costs(self.config.costs.fee_bps, self.config.costs.slippage_bps)

    def timed(self, stage: str, component: str, fn: Any, *args: Any, **kw: Any) -> Any:
        """Run a driver-side step and leave a span for it (serial time in the heatmap)."""
        t0, c0 = time.time(), time.process_time()
        try:
            return fn(*args, **kw)
        finally:
            self.spans.add(Span(stage=stage, component=component, worker=f"driver:{os.getpid()}",
                                node="driver", start=t0, end=time.time(),
                                cpu_s=time.process_time() - c0, items=1, ok=True, attempt=1))


def _market_table(market: Any) -> Any:
    """The market as one long table: timestamp, asset, open, high, low, close, volume, extras."""
    import pandas as pd

    frames = []
    for a, name in enumerate(market.assets):
        cols = {"timestamp": market.timestamps, "asset": name}
        for f in market.columns():
            cols[f] = market.field(f)[a]
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)


# -- stages: (ctx, inputs {name: hash}) -> (outputs {name: hash}, summary dict) ----------------

def data_stage(ctx: RunContext, inputs: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    m = ctx.market
    ref = ctx.store.put_table(_market_table(m), kind="market")
    return {"market": ref.hash}, {"source": m.source, "assets": m.n_assets, "bars": m.n_bars,
                                  "start": str(m.timestamps[0])[:10],
                                  "end": str(m.timestamps[-1])[:10]}


def _strategy_names(names: list[str]) -> list[str]:
    from quantfleet.strategies import get
    from quantfleet.strategies import names as all_names

    if names == ["all"]:
        return all_names()
    return [get(n).name for n in names]


def tournament_stage(ctx: RunContext, inputs: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    from quantfleet.research.tournament import tournament

    cfg = ctx.config.tournament
    m = ctx.market
    names = [s for s in _strategy_names(cfg.strategies)
             if all(m.field(f) is not None for f in _needs(s))]
    res = tournament(m, names, train=cfg.train, test=cfg.test, anchored=cfg.anchored,
                     metric=cfg.metric, max_combos=cfg.max_combos, costs=ctx.costs(),
                     long_short=cfg.long_short, executor=ctx.executor,
                     checkpoint_dir=ctx.run_dir.parent.parent / "checkpoints" / "tournament",
                     baseline=True, baseline_budget_s=5.0)
    overfit = res.overfit  # PBO and deflated Sharpe per (strategy, asset), computed in the tasks
    out = {
        "results": ctx.store.put_table(res.table, kind="tournament_results").hash,
        "leaderboard": ctx.store.put_table(res.leaderboard, kind="leaderboard").hash,
        "oos_returns": ctx.store.put_table(res.oos_returns.reset_index(), kind="oos_returns").hash,
        "overfit": ctx.store.put_table(overfit, kind="overfit").hash,
    }
    return out, {"strategies": names, "windows": len(res.windows), "rows": res.n_rows,
                 "backtests": res.n_backtests, "failed": len(res.failed), "wall_s": res.wall_s,
                 "baseline": res.speedup}


def _needs(name: str) -> tuple[str, ...]:
    from quantfleet.strategies import get

    s = get(name)
    return (*s.needs, *s.extras)


def evolution_stage(ctx: RunContext, inputs: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    from quantfleet.research.evolve import evolve

    cfg = ctx.config.evolution
    res = evolve(ctx.market, _strategy_names(cfg.strategies), population=cfg.population,
                 generations=cfg.generations, seed=cfg.seed, metric=cfg.metric,
                 train_frac=cfg.train_frac, costs=ctx.costs(), executor=ctx.executor,
                 checkpoint_dir=ctx.run_dir.parent.parent / "checkpoints" / "evolution")
    clock = ("wall_s", "cpu_s")
    history = [{k: v for k, v in h.items() if k not in clock} for h in res.history]
    doc = {"winners": res.winners, "history": history, "overfit": res.overfit,
           "evaluations": res.n_evaluations, "cached": res.n_cached, "failed": res.n_failed}
    timing = [{"round": h["round"], **{k: h[k] for k in clock}} for h in res.history]
    return ({"evolution": ctx.store.put_json(doc, kind="evolution").hash,
             "timing_evolution": ctx.store.put_json(timing, kind="evolution_timing").hash},
            {"evaluations": res.n_evaluations, "best": res.winners[0] if res.winners else None})


def returns_stage(ctx: RunContext, inputs: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    from quantfleet.portfolio.returns import from_assets, from_strategies

    cfg = ctx.config.portfolio
    if cfg.source == "assets":
        mat = from_assets(ctx.market)
    else:
        board = ctx.store.get_table(inputs["leaderboard"]).to_pandas()
        oos = ctx.store.get_table(inputs["oos_returns"]).to_pandas().set_index("timestamp")
        board = board[np.isfinite(board["oos_sharpe"])]
        cols = [f"{r.strategy}/{r.asset}" for r in board.head(cfg.winners).itertuples()]
        mat = from_strategies(oos, cols, source=f"tournament winners ({inputs['oos_returns'][:12]})")
    ref = ctx.store.put_table(mat.returns.reset_index(), kind="returns_matrix")
    prov = ctx.store.put_json(mat.provenance, kind="returns_matrix_provenance")
    return {"returns_matrix": ref.hash, "provenance": prov.hash}, {
        "columns": mat.columns, "rows": len(mat.returns)}


def portfolio_stage(ctx: RunContext, inputs: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    from quantfleet.portfolio.rebalance import rebalance

    cfg = ctx.config.portfolio
    mat = ctx.store.get_table(inputs["returns_matrix"]).to_pandas().set_index("timestamp")
    res = rebalance(mat, cfg.profiles, train=cfg.train, test=cfg.test,
                    fee_bps=ctx.config.costs.fee_bps + ctx.config.costs.slippage_bps,
                    executor=ctx.executor)
    clock = [c for c in ("fit_s", "cpu_s") if c in res.log.columns]
    out = {
        "weights": ctx.store.put_table(res.weights_long(), kind="portfolio_weights").hash,
        "returns": ctx.store.put_table(res.returns.reset_index(), kind="portfolio_returns").hash,
        "metrics": ctx.store.put_table(res.metrics.drop(columns=[c for c in ("fit_s",) if c in
                                                                 res.metrics.columns]),
                                       kind="portfolio_metrics").hash,
        "log": ctx.store.put_table(res.log.drop(columns=clock), kind="portfolio_log").hash,
        # timing_*: measured clocks, different on every run (results above are reproducible);
        # per-(profile, window) fit spans give the optimizer cost by window bucket, kept apart
        # from the run's task spans, which already cover this time
        "timing_fit_spans": ctx.store.put_table(res.spans.to_arrow(), kind="portfolio_spans").hash,
        "timing_profiles": ctx.store.put_table(res.timing(), kind="portfolio_timing").hash,
    }
    return out, {"profiles": [p.name for p in res.profiles], "windows": len(res.windows),
                 "wall_s": res.wall_s, "fallbacks": int((res.log["fallback"] != "").sum())
                 if "fallback" in res.log else 0}


STAGES = {
    "data": data_stage,
    "tournament": tournament_stage,
    "evolution": evolution_stage,
    "returns": returns_stage,
    "portfolio": portfolio_stage,
}
