"""The Prefect flow: one task per stage, heavy fan-out inside the stages on the Executor.

Orchestration wraps logic, never holds it: each task body calls a plain stage function
(stages.py). A stage is cached under a key made of its input artifact hashes, its settings
and the code version, with its result (the output artifact hashes) persisted by Prefect, so
a re-run after a crash or a SIGKILL skips finished stages and produces the same outputs.
Retries back off exponentially.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantfleet.pipeline.config import PipelineConfig

__all__ = ["RunOutcome", "make_stage_task", "prefect_env", "run_pipeline", "state_dir"]

ORDER = ("data", "tournament", "evolution", "returns", "portfolio")
DEPENDS = {
    "data": {},
    "tournament": {"market": ("data", "market")},
    "evolution": {"market": ("data", "market")},
    "returns": {"leaderboard": ("tournament", "leaderboard"),
                "oos_returns": ("tournament", "oos_returns")},
    "portfolio": {"returns_matrix": ("returns", "returns_matrix")},
}


def state_dir() -> Path:
    """Where runs, checkpoints and Prefect's local state live: ``$QUANTFLEET_HOME`` or
    ``./.quantfleet``."""
    return Path(os.environ.get("QUANTFLEET_HOME", ".quantfleet")).resolve()


def prefect_env(home: Path, api_url: str | None = None) -> None:
    """Quiet, isolated Prefect settings; must run before prefect is imported."""
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url


def _settings(config: PipelineConfig, stage: str) -> dict[str, Any]:
    base = {"costs": config.costs.model_dump(), "data": config.data.model_dump()}
    section = {"data": None, "tournament": config.tournament, "evolution": config.evolution,
               "returns": config.portfolio, "portfolio": config.portfolio}[stage]
    if section is not None:
        base[stage] = section.model_dump()
    return base


def make_stage_task(name: str, body: Callable[..., dict[str, Any]], *, retries: int,
                    retry_delay_s: float, result_dir: Path) -> Any:
    """A Prefect task around ``body(ctx, inputs, key)`` cached under ``key``.

    Retries back off exponentially (delay, 2·delay, 4·delay, ...).
    """
    from prefect import task

    def cache_key(_context: Any, parameters: dict[str, Any]) -> str:
        return parameters["key"]

    def transient(_task: Any, _run: Any, state: Any) -> bool:
        """Retry what may pass next time; bad input (a QuantfleetError) never will."""
        from quantfleet.errors import QuantfleetError

        try:
            state.result()
        except QuantfleetError:
            return False
        except Exception:
            return True
        return True

    return task(
        body, name=name, retries=retries,
        retry_delay_seconds=[retry_delay_s * 2 ** i for i in range(max(retries, 1))],
        cache_key_fn=cache_key, persist_result=True, result_storage=result_dir,
        result_serializer="json", cache_result_in_memory=False, retry_condition_fn=transient,
    )


@dataclass
class RunOutcome:
    """What ``run_pipeline`` returns: where things are and what each stage did."""

    run_id: str
    run_dir: Path
    store_url: str
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: Path | None = None
    wall_s: float = 0.0


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def run_pipeline(config: PipelineConfig, *, run_id: str | None = None,
                 log: Callable[[str], None] = print) -> RunOutcome:
    """Run every enabled stage of ``config`` as a Prefect flow; return where the outputs are."""
    home = state_dir()
    prefect_env(home, config.prefect.api_url)
    from prefect import flow

    from quantfleet.pipeline.stages import STAGES, RunContext, stage_key
    from quantfleet.store.artifacts import Store

    _preflight(config)
    run_id = run_id or new_run_id()
    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(config.store)
    metrics = _start_metrics(log)
    ctx = RunContext(config=config, run_id=run_id, run_dir=run_dir, store=store, log=log,
                     spans=metrics.recorder() if metrics is not None else None)
    manifest = store.start_run("run", config=config.model_dump(), run_id=run_id,
                               executor=config.executor.model_dump())
    outcome = RunOutcome(run_id=run_id, run_dir=run_dir, store_url=store.url)
    enabled = {"data": True, "tournament": config.tournament.enabled,
               "evolution": config.evolution.enabled,
               "returns": config.portfolio.enabled and (
                   config.portfolio.source == "assets" or config.tournament.enabled),
               "portfolio": config.portfolio.enabled}
    result_dir = home / "prefect-results"
    result_dir.mkdir(parents=True, exist_ok=True)

    def body_for(stage: str) -> Callable[..., dict[str, Any]]:
        def body(ctx: Any, inputs: dict[str, str], key: str) -> dict[str, Any]:
            t0 = time.time()
            # no span around the whole stage: its tasks leave their own, and a span wrapping
            # them would count the same seconds twice in the heatmap
            outputs, summary = STAGES[stage](ctx, inputs)
            return {"outputs": outputs, "summary": json.loads(json.dumps(summary, default=str)),
                    "key": key, "seconds": time.time() - t0}

        body.__name__ = f"{stage}_stage"
        return body

    tasks = {s: make_stage_task(s, body_for(s), retries=config.prefect.retries,
                                retry_delay_s=config.prefect.retry_delay_s,
                                result_dir=result_dir) for s in ORDER}

    @flow(name=config.name, flow_run_name=run_id, log_prints=False, persist_result=True,
          result_storage=result_dir)
    def pipeline() -> dict[str, Any]:
        done: dict[str, dict[str, Any]] = {}
        for stage in ORDER:
            if not enabled[stage]:
                continue
            inputs = {}
            for name, (src, out) in DEPENDS[stage].items():
                if src in done:
                    inputs[name] = done[src]["outputs"][out]
            if stage == "returns" and config.portfolio.source == "assets":
                inputs = {"market": done["data"]["outputs"]["market"]}
            key = stage_key(stage, inputs, _settings(config, stage), ctx.code)
            state = tasks[stage](ctx, inputs, key, return_state=True)
            result = state.result()
            cached = state.name == "Cached"
            done[stage] = {**result, "inputs": inputs, "cached": cached}
            manifest.record(stage, inputs=inputs, outputs=result["outputs"],
                            settings={**_settings(config, stage), "cache_key": key,
                                      "cached": cached, "code": ctx.code})
            store.save_run(manifest)
            log(f"stage {stage}: " + (f"served from cache (computed in {result['seconds']:.1f} s)"
                                      if cached else f"done in {result['seconds']:.1f} s"))
        return done

    t0 = time.time()
    try:
        outcome.stages = pipeline()
    except BaseException as e:
        store.finish_run(manifest, status="failed", error=e)
        raise
    finally:
        ctx.close()
        if metrics is not None:
            metrics.stop()
    outcome.wall_s = time.time() - t0
    _write_run(ctx, outcome)
    store.finish_run(manifest, timing={"wall_s": outcome.wall_s, "spans": len(ctx.spans.spans)},
                     metrics={k: v.get("summary") for k, v in outcome.stages.items()})
    return outcome


def _preflight(config: PipelineConfig) -> None:
    """Bad input fails before the flow starts, with one line naming the config key."""
    from quantfleet.data import load
    from quantfleet.errors import ConfigError, QuantfleetError
    from quantfleet.strategies import get

    try:
        market = load(config.data.source)
        if config.data.assets:
            market = market.select(config.data.assets)
    except QuantfleetError as e:
        raise ConfigError(f"data.source: {e}") from None
    for section in ("tournament", "evolution"):
        sec = getattr(config, section)
        if not sec.enabled:
            continue
        names = sec.strategies
        if names == ["all"]:
            continue  # the tournament keeps the seeds the data can feed
        for n in names:
            try:
                s = get(n)
            except QuantfleetError as e:
                raise ConfigError(f"{section}.strategies: {e}") from None
            missing = [f for f in (*s.needs, *s.extras) if market.field(f) is None]
            if missing:
                raise ConfigError(
                    f"{section}.strategies: {n} needs {', '.join(missing)} but "
                    f"{config.data.source} has {', '.join(market.columns())}; remove it or "
                    f"use OHLC data")


def _start_metrics(log: Callable[[str], None]) -> Any:
    """The Prometheus endpoint of this run on 127.0.0.1 (``QUANTFLEET_METRICS_PORT``, default
    a free port); the executor's span recorder feeds it."""
    if os.environ.get("QUANTFLEET_METRICS", "1") == "0":
        return None
    from quantfleet.observe.metrics import RunMetrics

    m = RunMetrics()
    port = os.environ.get("QUANTFLEET_METRICS_PORT")
    url = m.serve(int(port) if port else None)
    log(f"metrics: {url}")
    return m


def _write_run(ctx: Any, outcome: RunOutcome) -> None:
    """spans.parquet and run.json in the run directory (what profile/cost/report read)."""
    import pyarrow.parquet as pq

    pq.write_table(ctx.spans.to_arrow(), outcome.run_dir / "spans.parquet")
    tour = outcome.stages.get("tournament", {}).get("summary", {}) or {}
    stage_baselines = {}
    if tour.get("baseline") and not outcome.stages["tournament"].get("cached"):
        # measured (or sampled) for the tournament stage only: its scope is that stage's map
        stage_baselines["tournament"] = {**tour["baseline"], "scope": "tournament"}
    run = {"run_id": outcome.run_id, "wall_s": outcome.wall_s,
           "workers": ctx.config.executor.workers or os.cpu_count(),
           "executor": ctx.config.executor.kind, "store": outcome.store_url,
           "code": ctx.code, "config": ctx.config.model_dump(),
           # no whole-run serial baseline is measured (only the tournament's, below)
           "baseline": None, "stage_baselines": stage_baselines,
           "stages": outcome.stages}
    (outcome.run_dir / "run.json").write_text(json.dumps(run, indent=1, default=str))
