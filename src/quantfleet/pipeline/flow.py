"""``run_pipeline``: a config's stages as the Prefect flow of prefect_flow.py, recorded as one
run; heavy fan-out stays inside the stages on the Executor.

Orchestration wraps logic, never holds it: each task body runs a plain stage function
(stages.py) through the same recording code a research command uses (record.py). A stage is
cached under a key made of its input artifact hashes, its settings, the store, the library
versions, the data source's fingerprint and the code the stage runs (stages.stage_key), with
its result (the output artifact refs) persisted by Prefect, so a re-run
after a crash or a SIGKILL skips finished stages and produces the same outputs. Retries back
off exponentially.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from quantfleet.pipeline.config import PipelineConfig
from quantfleet.pipeline.home import prefect_env, state_dir
from quantfleet.pipeline.record import RunOutcome

__all__ = ["RunOutcome", "prefect_env", "run_pipeline", "state_dir"]


def run_pipeline(config: PipelineConfig, *, run_id: str | None = None, record: bool = True,
                 log: Callable[[str], None] = print) -> RunOutcome:
    """Run every enabled stage of ``config`` as a Prefect flow, recorded as one run in
    ``config.store`` (``record=False``: nothing kept, no stage served from or kept in the
    cache, whose artifacts would be gone); return what each stage did."""
    home = state_dir()
    prefect_env(home, config.prefect.api_url)
    from quantfleet.pipeline.prefect_flow import FlowRun, run_flow
    from quantfleet.pipeline.record import close_run, enabled_stages, open_run

    _preflight(config)
    metrics = _start_metrics(log)
    ctx = open_run(config, "run", run_id=run_id, log=log, record=record,
                   spans=metrics.recorder() if metrics is not None else None)
    outcome = RunOutcome(run_id=ctx.run_id, store_url=ctx.store.url if record else None,
                         context=ctx)
    result_dir = home / "prefect-results"
    result_dir.mkdir(parents=True, exist_ok=True)
    code = ""
    if not record:  # its artifacts live in a throwaway store: a cache entry would dangle
        import uuid

        code = f"-unrecorded-{uuid.uuid4().hex}"
    run = FlowRun(ctx=ctx, stages=enabled_stages(config), code=code, result_dir=result_dir,
                  log=log)
    t0 = time.time()
    try:
        outcome.stages = run_flow(run, config.name, ctx.run_id or "unrecorded")
    except BaseException as e:
        outcome.wall_s = time.time() - t0
        close_run(ctx, outcome, error=e)
        raise
    finally:
        if metrics is not None:
            metrics.stop()
    outcome.wall_s = time.time() - t0
    close_run(ctx, outcome)
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


