"""The pipeline's stages as plain functions: the only code that loads data, builds an executor,
calls a research driver and puts its outputs in the store, each with its kind.

A stage is ``(ctx, inputs {name: hash}) -> (outputs {name: ArtifactRef}, summary dict)``.
A research command is a one-stage run of these functions (``pipeline/record.run_stages``); the
Prefect flow (flow.py) wraps the same functions for retries, caching and state, so a stage
never needs Prefect and is testable on its own (DESIGN.md convention 7).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from quantfleet.observe.spans import SpanRecorder, SpanTimer
from quantfleet.pipeline.config import PipelineConfig

__all__ = [
    "CLOCK",
    "DEPENDS",
    "ORDER",
    "RESULT_PACKAGES",
    "STAGES",
    "STAGE_CODE",
    "RunContext",
    "backtest_stage",
    "cache_facts",
    "data_stage",
    "evolution_stage",
    "market_table",
    "portfolio_members",
    "portfolio_stage",
    "returns_stage",
    "stage_code",
    "stage_key",
    "sweep_stage",
    "tournament_stage",
]

ORDER = ("data", "backtest", "sweep", "tournament", "evolution", "returns", "portfolio")
"""Stages in the order a run executes them."""

DEPENDS: dict[str, dict[str, tuple[str, str]]] = {
    "data": {},
    "backtest": {"market": ("data", "market")},
    "sweep": {"market": ("data", "market")},
    "tournament": {"market": ("data", "market")},
    "evolution": {"market": ("data", "market")},
    "returns": {"oos_returns": ("tournament", "oos_returns")},
    "portfolio": {"returns_matrix": ("returns", "returns_matrix")},
}
"""``{stage: {input name: (producing stage, its output name)}}``."""


STAGE_CODE: dict[str, tuple[str, ...]] = {
    "data": ("quantfleet.data.loaders", "quantfleet.store.datasets"),
    "backtest": ("quantfleet.research.backtest",),
    "sweep": ("quantfleet.research.sweep",),
    # store.datasets: a shard dataset's reads and the parts its workers write
    "tournament": ("quantfleet.research.tournament", "quantfleet.store.datasets"),
    "evolution": ("quantfleet.research.evolve",),
    "returns": ("quantfleet.portfolio.returns",),
    "portfolio": ("quantfleet.portfolio", "quantfleet.portfolio.rebalance"),
}
"""The modules each stage's driver runs; with their imports (transitively) and this file they
are the code a stage's cache key covers (:func:`stage_code`)."""

RESULT_PACKAGES = ("numpy", "numba", "pandas", "pyarrow", "scipy", "scikit-learn", "skfolio")
"""Libraries whose version can change a stage's numbers; part of every stage's cache key."""


def stage_code(stage: str) -> str:
    """Fingerprint of the code ``stage`` runs: this file and the import closure of its
    driver modules (:data:`STAGE_CODE`), not every file of the package — editing the report
    does not recompute a tournament; editing a strategy kernel does."""
    from quantfleet.codeprint import code_fingerprint

    own = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    return f"{own}-{code_fingerprint(*STAGE_CODE[stage])}"


def cache_facts(ctx: RunContext, stage: str) -> dict[str, Any]:
    """What a stage's output depends on besides its inputs and config settings: the store it
    is kept in, the library versions, and for a stage that reads ``data.source`` itself the
    source's fingerprint (file: size + sha256; dataset: its file's; synthetic: the URL)."""
    from quantfleet.store.runs import package_versions

    facts: dict[str, Any] = {"store": ctx.store.url,
                             "packages": package_versions(RESULT_PACKAGES)}
    reads_source = stage == "data" or (stage == "returns"
                                       and ctx.config.portfolio.source == "data")
    if reads_source and ctx.dataset is not None:
        # a shard dataset: its manifest's hash names every shard's sha256
        facts["data_source"] = {"kind": "shards", "manifest": ctx.dataset.manifest_hash}
    elif reads_source:
        from quantfleet.data.loaders import fingerprint_source

        facts["data_source"] = fingerprint_source(ctx.config.data.source)
    return facts


def stage_key(stage: str, inputs: dict[str, str], settings: dict[str, Any], code: str) -> str:
    """Cache key of a stage: its name, input artifact hashes, settings (with
    :func:`cache_facts`) and code fingerprint (:func:`stage_code`)."""
    blob = json.dumps({"stage": stage, "inputs": inputs, "settings": settings, "code": code},
                      sort_keys=True, default=str)
    return f"{stage}-{hashlib.sha256(blob.encode()).hexdigest()[:32]}"


@dataclass
class RunContext:
    """What every stage of one run shares: config, store, run record, spans, executor.

    ``manifest`` is None for a run that is not recorded (``--no-store``): its stages then put
    their outputs in a throwaway ``memory://`` store. ``results`` keeps each stage's driver
    result in this process, for the command that prints it. ``stage`` names the stage
    running now: the driver's own steps (data load, executor start, store writes, tables)
    leave spans under it (:meth:`timed`; node ``driver``).
    """

    config: PipelineConfig
    store: Any
    home: Path
    run_id: str | None = None
    manifest: Any = None
    spans: SpanRecorder = field(default_factory=SpanRecorder)
    log: Any = print
    progress: bool = False
    results: dict[str, Any] = field(default_factory=dict)
    stage: str = "run"
    _executor: Any = None
    _closed: bool = False
    _workers: int | None = None

    def executor(self, n_items_hint: int | None = None, item_cost_s: float | None = None) -> Any:
        """The run's Executor, started on first use (Ray starts only if a stage computes);
        the hints let ``kind = "auto"`` size it to the first stage's work."""
        if self._executor is None:
            from quantfleet.compute import make_executor

            ex = self.config.executor
            kw: dict[str, Any] = {"recorder": self.spans}
            if item_cost_s is not None:
                kw["item_cost_s"] = item_cost_s
            timer = SpanTimer()
            self._executor = make_executor(ex.kind, workers=ex.workers,
                                           ray_address=ex.ray_address,
                                           n_items_hint=n_items_hint, **kw)
            self.spans.add(timer.finish_driver(self.stage,
                                               f"driver.{self._executor.name}_start"))
            if ex.kind == "auto":
                self.log(f"executor: {self._executor.name} "
                         f"({getattr(self._executor, 'reason', 'auto')})")
        return self._executor

    @property
    def executor_name(self) -> str:
        return getattr(self._executor, "name", self.config.executor.kind)

    @property
    def executor_reason(self) -> str | None:
        """Why this backend (``make_executor``'s words; for ``auto`` its estimate of the work)."""
        return getattr(self._executor, "reason", None)

    @property
    def workers(self) -> int:
        """The run's parallelism (kept at close: a closed Ray executor cannot be asked)."""
        if self._workers is None:
            self._workers = int(getattr(self._executor, "workers", None)
                                or self.config.executor.workers or os.cpu_count() or 1)
        return self._workers

    def close(self) -> None:
        if self._executor is not None and not self._closed:
            _ = self.workers
            self._executor.close()
            self._closed = True

    @cached_property
    def dataset(self) -> Any:
        """The shard dataset ``data.source = "shards:NAME[@HASH]"`` names in the run's store
        (``store.datasets.ShardDataset``: its manifest, no prices), or None for other sources."""
        from quantfleet.store.datasets import open_dataset, parse_shards

        if parse_shards(self.config.data.source) is None:
            return None
        if self.manifest is None:
            from quantfleet.errors import ConfigError

            raise ConfigError(f"data.source {self.config.data.source}: a shard dataset is read "
                              f"from the run's store and its tasks write their rows there; "
                              f"drop --no-store and pass --store URL")
        timer = SpanTimer()
        ds = open_dataset(self.store, self.config.data.source,
                          assets=self.config.data.assets or None)
        self.spans.add(timer.finish_driver(self.stage, "driver.load"))
        return ds

    @property
    def market_view(self) -> Any:
        """What the driver knows of the market without loading a shard dataset's prices:
        its ``MarketView``, or the loaded MarketData of any other source."""
        return self.dataset.view if self.dataset is not None else self.market

    @cached_property
    def market(self) -> Any:
        """The whole market in this process (a shard dataset: every shard read here; the
        tournament stage does not ask for it)."""
        from quantfleet.data import load

        timer = SpanTimer()
        if self.dataset is not None:
            m = self.dataset.load_all()
        else:
            m = load(self.config.data.source)
            if self.config.data.assets:
                m = m.select(self.config.data.assets)
        self.spans.add(timer.finish_driver(self.stage, "driver.load"))
        return m

    def costs(self) -> Any:
        from quantfleet.backtest.terms import Costs

        return Costs(self.config.costs.fee_bps, self.config.costs.slippage_bps)

    def execution(self) -> Any:
        """The run's :class:`~quantfleet.backtest.terms.Execution` (the ``[execution]`` table)."""
        return self.config.execution.build()

    def checkpoint(self, value: str | None, stage: str) -> Path | None:
        if value is None:
            return None
        return self.home / "checkpoints" / stage if value == "auto" else Path(value)

    def put(self, value: Any, kind: str, *, read_back: bool = True) -> Any:
        """Put a table (DataFrame / Arrow / a .parquet file) or a JSON document as ``kind``
        (a ``driver.store`` span of the current stage).

        ``read_back=False``: no stage of this run reads the table from the store (the data
        stage's market: the stages use :attr:`market`), so an unrecorded run, whose store is
        thrown away at its end, only hashes it (``store.table_ref``: the same ref, no bytes
        kept in memory); a recorded run stores it as usual."""
        if not read_back and self.manifest is None and not isinstance(value, (dict, list, str, Path)):
            return self.timed(self.stage, "driver.store", self.store.table_ref, value, kind=kind)
        if isinstance(value, (dict, list)):
            return self.timed(self.stage, "driver.store", self.store.put_json, value, kind=kind)
        if isinstance(value, (str, Path)):
            return self.timed(self.stage, "driver.store", self.store.put_parquet_file, value,
                              kind=kind)
        return self.timed(self.stage, "driver.store", self.store.put_table, value, kind=kind)

    def timed(self, stage: str, component: str, fn: Any, *args: Any, **kw: Any) -> Any:
        """Run a driver-side step and leave a span for it (node ``driver``: driver time in
        the heatmap and the timeline, never a busy worker); ``ok`` False if it raised."""
        timer, ok = SpanTimer(), False
        try:
            out = fn(*args, **kw)
            ok = True
            return out
        finally:
            self.spans.add(timer.finish_driver(stage, component, ok=ok))


def market_table(market: Any) -> Any:
    """The market as one long Arrow table: timestamp, asset, open, high, low, close, volume,
    extras (one asset after another). Built from the arrays without a pandas round trip: a
    price column of a one-asset market is the market's own memory, not a copy."""
    import numpy as np
    import pyarrow as pa

    from quantfleet.data.arrow import from_numpy, repeat_string

    ts = from_numpy(np.asarray(market.timestamps).astype("datetime64[ns]", copy=False))
    fields = list(market.columns())
    batches = []
    for a, name in enumerate(market.assets):
        cols = [ts, repeat_string(str(name), len(ts))]
        cols += [from_numpy(np.asarray(market.field(f)[a])) for f in fields]
        batches.append(pa.RecordBatch.from_arrays(cols, ["timestamp", "asset", *fields]))
    return pa.Table.from_batches(batches)


# -- stages ------------------------------------------------------------------------------------

def data_stage(ctx: RunContext, inputs: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    ds = ctx.dataset
    if ds is not None:  # the prices are in the store already: the manifest stands for them
        v = ds.view
        return {"market": ctx.put(ds.manifest, "dataset_manifest")}, {
            "source": ds.reference, "assets": v.n_assets, "bars": v.n_bars,
            "start": str(v.timestamps[0])[:10], "end": str(v.timestamps[-1])[:10]}
    m = ctx.market
    return {"market": ctx.put(ctx.timed("data", "driver.tables", market_table, m), "market",
                              read_back=False)}, {
        "source": m.source, "assets": m.n_assets, "bars": m.n_bars,
        "start": str(m.timestamps[0])[:10], "end": str(m.timestamps[-1])[:10]}


def backtest_stage(ctx: RunContext, inputs: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    from quantfleet.research.backtest import backtest

    cfg = ctx.config.backtest
    rows = ctx.timed("backtest", f"backtest.{cfg.strategy}", backtest, ctx.market, cfg.strategy,
                     cfg.params, ctx.costs(), assets=cfg.assets or None,
                     long_short=cfg.long_short, ppy=cfg.periods_per_year,
                     execution=ctx.execution())
    ctx.results["backtest"] = rows
    # no stage reads it back: an unrecorded run only hashes it
    return {"results": ctx.put(_backtest_table(rows), "backtest_results", read_back=False)}, {
        "strategy": cfg.strategy, "assets": len(rows), "params": rows[0]["params"] if rows else {}}


def _backtest_table(rows: list[dict[str, Any]]) -> Any:
    """The backtest stage's results table, one row per asset (params and execution as sorted
    JSON text): built without pandas (``data.arrow.table_from_rows``: the columns and types a
    DataFrame of the rows gives), through a DataFrame only for values it does not take."""
    from quantfleet.data.arrow import table_from_rows

    flat = [{**{k: v for k, v in r.items() if k not in ("params", "execution")},
             "params": json.dumps(r["params"], sort_keys=True),
             "execution": json.dumps(r["execution"], sort_keys=True)} for r in rows]
    table = table_from_rows(flat)
    if table is None:
        import pandas as pd

        table = pd.DataFrame(flat)
    return table


def sweep_stage(ctx: RunContext, inputs: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    from quantfleet.research.sweep import sweep

    cfg = ctx.config.sweep
    res = sweep(ctx.market, cfg.strategy, cfg.grid, ctx.costs(), executor=ctx.executor(),
                assets=cfg.assets or None, long_short=cfg.long_short,
                ppy=cfg.periods_per_year, out=cfg.out, keep_table=cfg.out is None,
                metric=cfg.metric, top=cfg.top, execution=ctx.execution())
    ctx.results["sweep"] = res
    table = res.table if res.table is not None else res.path
    return {"results": ctx.put(table, "sweep_results"),
            "leaderboard": ctx.put(res.top, "sweep_leaderboard")}, {
        "strategy": res.strategy, "combos": res.n_combos, "skipped": res.n_skipped,
        "rows": res.n_rows, "failed": len(res.failed), "assets": len(res.assets),
        "metric": cfg.metric, "overfit": res.overfit}


def _strategy_names(names: list[str]) -> list[str]:
    from quantfleet.strategies import get
    from quantfleet.strategies import names as all_names

    if names == ["all"]:
        return all_names()
    return [get(n).name for n in names]


def _needs(name: str) -> tuple[str, ...]:
    from quantfleet.strategies import get

    s = get(name)
    return (*s.needs, *s.extras)


def tournament_stage(ctx: RunContext, inputs: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    from quantfleet.research.tournament import plan_tournament, tournament

    cfg = ctx.config.tournament
    # a shard dataset stays in the store: the driver plans on its view, the tasks load assets
    m = ctx.dataset if ctx.dataset is not None else ctx.market
    have = set(ctx.market_view.columns())
    names = [s for s in _strategy_names(cfg.strategies) if all(f in have for f in _needs(s))]
    # what the tournament will run, and its estimated work: executor "auto" picks by it
    tp = plan_tournament(ctx.market_view, names, assets=cfg.assets or None, train=cfg.train, test=cfg.test,
                         n_windows=cfg.windows, anchored=cfg.anchored, grid=cfg.grid,
                         grids=cfg.grids, max_combos=cfg.max_combos)
    res = tournament(m, names, assets=cfg.assets or None, train=cfg.train, test=cfg.test,
                     n_windows=cfg.windows, anchored=cfg.anchored, metric=cfg.metric,
                     grid=cfg.grid, grids=cfg.grids, max_combos=cfg.max_combos,
                     costs=ctx.costs(), long_short=cfg.long_short, ppy=cfg.periods_per_year,
                     executor=ctx.executor(n_items_hint=tp.n_items,
                                           item_cost_s=tp.estimate_s() / max(tp.n_items, 1)),
                     out=cfg.out, keep_table=cfg.out is None,
                     checkpoint_dir=ctx.checkpoint(cfg.checkpoint, "tournament"),
                     baseline=ctx.config.baseline.enabled,
                     baseline_budget_s=ctx.config.baseline.budget_s,
                     map_options={"progress": ctx.progress}, execution=ctx.execution(),
                     confidence=cfg.confidence.enabled and cfg.confidence.model_dump(
                         exclude={"enabled"}), cv=_cpcv(cfg))
    ctx.results["tournament"] = res
    if res.parts is not None:
        results, oos = _tournament_parts(ctx, res)
    else:
        table = res.table if res.table is not None else Path(res.path) / "results.parquet"
        results = ctx.put(table, "tournament_results")
        oos = ctx.put(res.oos_returns.reset_index(), "oos_returns")
    out = {
        "results": results,
        "leaderboard": ctx.put(res.leaderboard, "leaderboard"),
        "oos_returns": oos,
        # PBO and deflated Sharpe per (strategy, asset), computed in the tasks
        "overfit": ctx.put(res.overfit, "overfit"),
    }
    if res.confidence:  # one row: the winner's bootstrap intervals and permutation p-value
        import pandas as pd

        from quantfleet.research.confidence import confidence_row

        out["confidence"] = ctx.put(pd.DataFrame([confidence_row(res.confidence)]),
                                    "tournament_confidence")
    if res.stability:  # each strategy's map over its two most important parameters, long
        from quantfleet.research.stability import stability_table

        out["stability"] = ctx.put(stability_table(res.stability), "tournament_stability")
    if res.cpcv is not None:  # cv = "cpcv": per pair, and per pair and path
        out["cpcv"] = ctx.put(res.cpcv, "tournament_cpcv")
        out["cpcv_paths"] = ctx.put(res.cpcv_paths, "tournament_cpcv_paths")
    return out, {"strategies": names, "windows": len(res.windows), "rows": res.n_rows,
                 "backtests": res.n_backtests, "failed": len(res.failed), "wall_s": res.wall_s,
                 "baseline": res.speedup,
                 # the leaderboard winner's DSR among every (pair, combo) trial, pooled PBO
                 "overfit": res.winner_overfit,
                 # bootstrap CIs of the winner's OOS Sharpe / max drawdown, permutation p-value
                 "confidence": res.confidence,
                 # per strategy: the OOS metric's map, the plateau drop at its most chosen combo
                 "stability": res.stability}


def _cpcv(cfg: Any) -> Any:
    """The tournament's :class:`~quantfleet.research.cpcv.Cpcv` (None: walk-forward only)."""
    if cfg.cv != "cpcv":
        return None
    from quantfleet.research.cpcv import Cpcv

    return Cpcv(cfg.groups, cfg.test_groups, cfg.embargo)


def _tournament_parts(ctx: RunContext, res: Any) -> tuple[Any, Any]:
    """A shard tournament's ``results`` and ``oos_returns``: parts tables over the Parquet
    parts its workers wrote (``Store.put_parts``; ``get_table`` joins them), the returns' first
    part the timestamps, so they read back as the in-memory tournament's tables."""
    import pandas as pd

    p = res.parts
    lo, hi = p["oos_span"]
    ts = pd.DatetimeIndex(ctx.market_view.timestamps[lo:hi], name="timestamp")
    index = ctx.put(pd.DataFrame(index=ts).reset_index(), "oos_returns_part")
    results = ctx.timed(ctx.stage, "driver.store", ctx.store.put_parts,
                        [x["hash"] for x in p["results"]], "tournament_results", "rows",
                        res.n_rows)
    oos = ctx.timed(ctx.stage, "driver.store", ctx.store.put_parts,
                    [index.hash] + [x["hash"] for x in p["oos_returns"]], "oos_returns",
                    "columns", hi - lo)
    return results, oos


CLOCK = ("wall_s", "cpu_s")
"""Measured clock fields, kept out of result artifacts so equal runs give equal hashes."""


def evolution_stage(ctx: RunContext, inputs: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    import pandas as pd

    from quantfleet.research.evolve import data_fingerprint, evolve

    cfg = ctx.config.evolution
    ck: Any = ctx.checkpoint(cfg.checkpoint, "evolution")
    if ck is not None and cfg.checkpoint == "auto":
        # one automatic checkpoint per (settings, data): an interrupted run resumes, a run on
        # other data or settings starts afresh (an explicit directory refuses instead)
        blob = json.dumps([cfg.model_dump(mode="json"), ctx.config.costs.model_dump(mode="json"),
                           data_fingerprint(ctx.market)]
                          + ([ctx.config.execution.model_dump(mode="json")]
                             if not ctx.execution().is_default else []),
                          sort_keys=True, default=str)
        name = hashlib.sha256(blob.encode()).hexdigest()[:16]
        if ctx.manifest is not None:
            # a recorded run keeps it in its store (local folder or S3), where a Ray
            # coordinator on another machine finds it too
            from quantfleet.research.evolve import CHECKPOINT
            from quantfleet.store.checkpoints import StoreCheckpoint

            ck = StoreCheckpoint(ctx.store, f"evolution/{name}/{CHECKPOINT}")
        else:
            ck = ck / name
    elif cfg.checkpoint is not None and "://" in cfg.checkpoint:
        from quantfleet.errors import ConfigError

        raise ConfigError(f"[evolution] checkpoint {cfg.checkpoint!r}: an explicit checkpoint "
                          f"is a local directory; for one in S3 use checkpoint = \"auto\" with "
                          f"the run's store there (--store s3://bucket/prefix)")
    ga = {k: getattr(cfg, k) for k in ("mutation", "crossover", "elite", "immigrants")
          if getattr(cfg, k) is not None}
    res = evolve(ctx.market, _strategy_names(cfg.strategies), population=cfg.population,
                 generations=cfg.generations, seed=cfg.seed, metric=cfg.metric,
                 train_frac=cfg.train_frac, costs=ctx.costs(), long_short=cfg.long_short,
                 ppy=cfg.periods_per_year, assets=cfg.assets or None, executor=ctx.executor(),
                 checkpoint_dir=ck, top=cfg.top, grid=cfg.grid, grids=cfg.grids,
                 execution=ctx.execution(), searcher=cfg.searcher, **ga)
    ctx.results["evolution"] = res
    winners = pd.DataFrame([{**w, "params": json.dumps(w["params"], sort_keys=True)}
                            for w in res.winners])
    history = pd.DataFrame([{k: v for k, v in h.items() if k not in CLOCK}
                            for h in res.history])
    timing = pd.DataFrame([{"round": h["round"], **{k: h[k] for k in CLOCK}}
                           for h in res.history])
    return ({"evolution": ctx.put(winners, "evolution"),
             "history": ctx.put(history, "evolution_history"),
             "timing_evolution": ctx.put(timing, "evolution_timing")},
            {"searcher": cfg.searcher,
             "evaluations": res.n_evaluations, "cached": res.n_cached, "failed": res.n_failed,
             "best": res.winners[0] if res.winners else None, "overfit": res.overfit,
             "coordinator": res.coordinator})


def portfolio_members(cfg: Any) -> int | None:
    """Members per rebalancing window: ``[portfolio] winners``, by default 10 when the matrix
    holds the tournament's pairs and every column otherwise (None)."""
    if cfg.winners is not None:
        return int(cfg.winners)
    return 10 if cfg.source == "strategies" else None


def returns_stage(ctx: RunContext, inputs: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    import numpy as np

    from quantfleet.portfolio.returns import (
        ReturnsMatrix,
        from_assets,
        from_strategies,
        returns_matrix,
    )

    cfg = ctx.config.portfolio
    if cfg.source == "assets":
        mat = from_assets(ctx.market)
    elif cfg.source == "data":
        mat = returns_matrix(ctx.config.data.source, cfg.assets or None, kind=cfg.kind)
    else:
        # every pair the tournament traded: which of them the portfolio holds is chosen per
        # rebalancing window from the bars before it (portfolio stage), never from the whole
        # history the portfolio is then scored on
        oos = ctx.store.get_table(inputs["oos_returns"]).to_pandas().set_index("timestamp")
        cols = [str(c) for c in oos.columns if np.isfinite(oos[c].to_numpy(float)).any()]
        mat = from_strategies(oos, cols, source=f"tournament pairs ({inputs['oos_returns'][:12]})")
    k = portfolio_members(cfg)
    selection = (f"members chosen per window from the {len(mat.columns)} "
                 f"{'tournament pairs' if cfg.source == 'strategies' else 'columns'} by "
                 f"train-window Sharpe (top {k})" if k is not None
                 else f"every one of the {len(mat.columns)} columns in every window")
    mat = ReturnsMatrix(mat.returns, {**mat.provenance, "selection": selection})
    ctx.results["returns"] = mat
    return {"returns_matrix": ctx.put(mat.returns.reset_index(), "returns_matrix"),
            "provenance": ctx.put(mat.provenance, "returns_matrix_provenance")}, {
        "columns": mat.columns, "rows": len(mat.returns)}


def portfolio_stage(ctx: RunContext, inputs: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    from quantfleet.portfolio import parse_profiles
    from quantfleet.portfolio.rebalance import rebalance

    cfg = ctx.config.portfolio
    mat = ctx.results.get("returns")
    if mat is None:  # a resumed flow: the returns stage was served from cache
        mat = ctx.store.get_table(inputs["returns_matrix"]).to_pandas().set_index("timestamp")
    settings = {k: v for k, v in {"covariance": cfg.covariance, "linkage": cfg.linkage,
                                  "risk_free_rate": cfg.risk_free_rate,
                                  "min_weights": cfg.min_weight,
                                  "max_weights": cfg.max_weight}.items() if v is not None}
    profiles = parse_profiles(cfg.profiles, **settings)
    fee = cfg.fee_bps if cfg.fee_bps is not None else (
        ctx.config.costs.fee_bps + ctx.config.costs.slippage_bps)
    n_windows = max(0, (len(getattr(mat, "returns", mat)) - cfg.train) // max(cfg.test, 1))
    res = rebalance(mat, profiles, train=cfg.train, test=cfg.test, fee_bps=fee, drift=cfg.drift,
                    executor=ctx.executor(n_items_hint=n_windows * len(profiles),
                                          item_cost_s=0.03),
                    ppy=cfg.periods_per_year, members=portfolio_members(cfg),
                    benchmark=_benchmark_returns(ctx, mat))
    if cfg.out is not None:
        res.write(cfg.out)
    ctx.results["portfolio"] = res
    clock = [c for c in ("fit_s", "cpu_s") if c in res.log.columns]
    out = {
        "weights": ctx.put(res.weights_long(), "weights"),
        "returns": ctx.put(res.returns.reset_index(), "portfolio_returns"),
        "metrics": ctx.put(res.metrics.drop(columns=[c for c in ("fit_s",)
                                                     if c in res.metrics.columns]),
                           "portfolio_metrics"),
        "log": ctx.put(res.log.drop(columns=clock), "portfolio_log"),
        # timing_*: measured clocks, different on every run (results above are reproducible);
        # per-(profile, window) fit spans give the optimizer cost by window bucket, kept apart
        # from the run's task spans, which already cover this time
        "timing_fit_spans": ctx.put(res.spans.to_arrow(), "portfolio_spans"),
        "timing_profiles": ctx.put(res.timing(), "portfolio_timing"),
    }
    if res.members is not None:
        out["members"] = ctx.put(res.members, "portfolio_members")
    if res.benchmark is not None:
        out["benchmark"] = ctx.put(res.benchmark.to_frame().reset_index(), "portfolio_benchmark")
    sel = res.provenance.get("selection")
    origin = getattr(mat, "provenance", {}).get("selection")
    selection = (f"{origin}: {sel['text']}" if origin else f"members: {sel['text']}") if sel \
        else "every column in every window"
    conf = None
    if cfg.confidence.enabled:  # each profile's bootstrap intervals of Sharpe and max drawdown
        from quantfleet.research.confidence import profile_confidence

        conf = ctx.timed("portfolio", "driver.confidence", profile_confidence, res.returns,
                         ppy=res.provenance["ppy"], n_boot=cfg.confidence.n_boot,
                         level=cfg.confidence.level, seed=cfg.confidence.seed)
    return out, {"profiles": [p.name for p in res.profiles], "windows": len(res.windows),
                 "confidence": conf,
                 "wall_s": res.wall_s, "fallbacks": int((res.log["fallback"] != "").sum())
                 if "fallback" in res.log else 0,
                 "selection": selection,
                 "buy_and_hold": res.provenance["buy_and_hold"]["text"]}


def _benchmark_returns(ctx: RunContext, mat: Any) -> Any:
    """What the buy-and-hold beside each profile holds: for the tournament's pairs, every
    asset they trade (close-to-close returns from the run's market, or from
    ``portfolio.prices`` for a matrix of strategies read from ``data.source``); else the
    matrix's own columns when they are assets ("auto")."""
    import numpy as np
    import pandas as pd

    cfg = ctx.config.portfolio
    if cfg.source == "assets" and isinstance(mat, pd.DataFrame):  # a resumed flow
        return mat
    cols = [str(c) for c in getattr(mat, "returns", mat).columns]
    if cfg.source == "strategies" and ctx.dataset is not None:
        # only the traded assets' shards, not the whole dataset
        m = ctx.dataset.load(list(dict.fromkeys(c.split("/", 1)[1] for c in cols)))
    elif cfg.source == "strategies":
        m = ctx.market
    elif cfg.prices is not None and all("/" in c for c in cols):
        from quantfleet.data import load

        m = load(cfg.prices)
    else:
        return "auto"
    idx = sorted({m.asset_index(c.split("/", 1)[1]) for c in cols})
    close = m.close[idx]
    r = close[:, 1:] / close[:, :-1] - 1.0
    return pd.DataFrame(r.T, index=pd.DatetimeIndex(m.timestamps[1:], name="timestamp"),
                        columns=[m.assets[i] for i in idx]).astype(np.float64)


STAGES = {
    "data": data_stage,
    "backtest": backtest_stage,
    "sweep": sweep_stage,
    "tournament": tournament_stage,
    "evolution": evolution_stage,
    "returns": returns_stage,
    "portfolio": portfolio_stage,
}
