"""Opening, recording and closing a run in the store, and reading one back.

The one place a run is recorded: a research command (a one-stage run, :func:`run_stages`) and
the Prefect flow (flow.py) both open a run here, record each stage's inputs and outputs, and
close it with its spans (kind ``spans``) and summary (kind ``run_summary``) as artifacts.
``profile``, ``cost`` and ``report`` read a run back with ``run_record.load_run``.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantfleet.observe.spans import SpanRecorder
from quantfleet.pipeline.config import PipelineConfig
from quantfleet.pipeline.run_record import RunRecord
from quantfleet.pipeline.stages import DEPENDS, ORDER, STAGES, RunContext

__all__ = [
    "RunOutcome",
    "close_run",
    "enabled_stages",
    "execute_stage",
    "finish_metrics",
    "open_run",
    "orchestration_spans",
    "preflight",
    "pushgateway_url",
    "record_stage",
    "recorded_run",
    "run_stages",
    "run_summary",
    "stage_inputs",
    "stage_settings",
    "start_metrics",
]


@dataclass
class RunOutcome:
    """What a run did: its id (None when not recorded), store and each stage's result."""

    run_id: str | None
    store_url: str | None
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_s: float = 0.0
    context: RunContext | None = None
    report: Path | None = None  # the HTML report a flow run wrote

    @property
    def results(self) -> dict[str, Any]:
        """The drivers' result objects by stage (this process only)."""
        return self.context.results if self.context is not None else {}


def enabled_stages(config: PipelineConfig) -> list[str]:
    """The stages ``config`` turns on, in run order."""
    p = config.portfolio
    on = {"backtest": config.backtest.enabled, "sweep": config.sweep.enabled,
          "tournament": config.tournament.enabled, "evolution": config.evolution.enabled,
          "returns": p.enabled and (p.source != "strategies" or config.tournament.enabled),
          "portfolio": p.enabled}
    on["data"] = (on["backtest"] or on["sweep"] or on["tournament"] or on["evolution"]
                  or (on["returns"] and p.source == "assets"))
    return [s for s in ORDER if on[s]]


def stage_inputs(config: PipelineConfig, stage: str,
                 done: dict[str, dict[str, Any]]) -> dict[str, str]:
    """``{name: hash}`` of the artifacts ``stage`` reads, from the stages already done."""
    if stage == "returns" and config.portfolio.source != "strategies":
        return {"market": done["data"]["outputs"]["market"]} if "data" in done else {}
    return {name: done[src]["outputs"][out] for name, (src, out) in DEPENDS[stage].items()
            if src in done}


def stage_settings(config: PipelineConfig, stage: str) -> dict[str, Any]:
    """What shapes a stage's outputs besides its inputs (part of its cache key)."""
    base = {"costs": config.costs.model_dump(), "data": config.data.model_dump()}
    section = {"data": None, "backtest": config.backtest, "sweep": config.sweep,
               "tournament": config.tournament, "evolution": config.evolution,
               "returns": config.portfolio, "portfolio": config.portfolio}[stage]
    if section is not None:
        base[stage] = section.model_dump()
    return base


def preflight(config: PipelineConfig) -> None:
    """Bad input fails before the flow starts, with one line naming the config key."""
    from quantfleet.data import load
    from quantfleet.errors import ConfigError, QuantfleetError
    from quantfleet.store.datasets import open_dataset, parse_shards
    from quantfleet.strategies import get

    try:
        if parse_shards(config.data.source) is not None:
            # a shard dataset: its manifest (no prices) is all the checks need
            from quantfleet.store import Store

            market = open_dataset(Store.open(config.store), config.data.source,
                                  assets=config.data.assets or None).view
        else:
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
            missing = [f for f in (*s.needs, *s.extras) if f not in market.columns()]
            if missing:
                raise ConfigError(
                    f"{section}.strategies: {n} needs {', '.join(missing)} but "
                    f"{config.data.source} has {', '.join(market.columns())}; remove it or "
                    f"use OHLC data")


def open_run(config: PipelineConfig, command: str, *, record: bool = True,
             run_id: str | None = None, log: Callable[[str], None] = print,
             spans: SpanRecorder | None = None, progress: bool = False,
             metrics: Any = None) -> RunContext:
    """A context for a new run; with ``record`` its manifest is saved as ``running`` in
    ``config.store`` (the config is its first artifact), without it the stages write to a
    throwaway ``memory://`` store and nothing is kept. ``metrics`` (a ``RunMetrics``, see
    :func:`start_metrics`) counts the store's bytes and the executors' tasks."""
    from quantfleet.pipeline.home import state_dir
    from quantfleet.store import Store

    home = state_dir()
    if metrics is not None:
        spans = metrics.attach(spans) if spans is not None else metrics.recorder()
    if record:
        store = Store.open(config.store)
        if metrics is not None:
            metrics.watch(store)
        manifest = store.start_run(command, config=config.model_dump(), run_id=run_id,
                                   executor=config.executor.model_dump())
        manifest.attach("config", store.put_json(config.model_dump(), kind="config"))
        store.save_run(manifest)
        run_id = manifest.run_id
    else:
        store = Store.open(f"memory://unrecorded-{uuid.uuid4().hex}")
        if metrics is not None:
            metrics.watch(store)
        manifest = None
    return RunContext(config=config, store=store, home=home, run_id=run_id, manifest=manifest,
                      spans=spans if spans is not None else SpanRecorder(), log=log,
                      progress=progress)


def execute_stage(ctx: RunContext, stage: str, inputs: dict[str, str]) -> dict[str, Any]:
    """Run one stage; its result as JSON-able data (what Prefect persists for its cache):
    ``{"outputs": {name: ArtifactRef dict}, "summary", "seconds"}``."""
    t0 = time.time()
    # no span around the whole stage: its tasks leave their own, and a span wrapping them
    # would count the same seconds twice in the heatmap; its driver steps leave theirs
    # under ctx.stage
    ctx.stage = stage
    outputs, summary = STAGES[stage](ctx, inputs)
    t1 = time.time()
    return {"outputs": {n: r.to_dict() for n, r in outputs.items()},
            "summary": json.loads(json.dumps(summary, default=str)),
            "seconds": t1 - t0, "started": t0, "ended": t1}


def orchestration_spans(ctx: RunContext, stage: str, before: float, result: dict[str, Any],
                        after: float) -> None:
    """Driver spans ``driver.orchestration`` for a stage's time outside its own function: from
    ``before`` (the stage was asked for) to its start, and from its end to ``after`` (its
    result persisted, recorded in the manifest); the whole interval for a stage served from
    cache (``result`` without this run's ``started``/``ended``)."""
    from quantfleet.observe.spans import DRIVER_NODE, Span

    t0, t1 = result.get("started"), result.get("ended")
    if t0 is None or t1 is None or not before <= t0 <= t1 <= after:
        parts = [(before, after)]
    else:
        parts = [(before, t0), (t1, after)]
    for a, b in parts:
        if b > a:
            ctx.spans.add(Span(stage=stage, component="driver.orchestration",
                               worker=f"driver:{os.getpid()}", node=DRIVER_NODE, start=a,
                               end=b, cpu_s=math.nan, items=0, ok=True, attempt=1))


def record_stage(ctx: RunContext, stage: str, inputs: dict[str, str], result: dict[str, Any],
                 *, cached: bool = False, settings: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """Add a stage's step to the run's manifest (outputs with their kinds) and save it.
    Returns the stage's entry for :class:`RunOutcome` (outputs as ``{name: hash}``)."""
    from quantfleet.store import ArtifactRef

    refs = {n: ArtifactRef.from_dict(d) for n, d in result["outputs"].items()}
    if ctx.manifest is not None:
        ctx.manifest.record(stage, inputs=inputs, outputs=refs, settings={
            **(settings if settings is not None else stage_settings(ctx.config, stage)),
            "cached": cached})
        ctx.store.save_run(ctx.manifest)
    return {"outputs": {n: r.hash for n, r in refs.items()}, "summary": result["summary"],
            "seconds": result["seconds"], "inputs": inputs, "cached": cached}


def close_run(ctx: RunContext, outcome: RunOutcome, error: BaseException | None = None) -> None:
    """Finish the run: put its spans and summary as artifacts and close the manifest
    (``failed`` with the error's first line if ``error``). An unrecorded run's throwaway
    store is emptied."""
    ctx.close()
    if ctx.manifest is None:
        ctx.store.discard()
        return
    st, m = ctx.store, ctx.manifest
    m.attach("spans", st.put_table(ctx.spans.to_arrow(), kind="spans"))
    summary = run_summary(ctx, outcome)
    m.attach("summary", st.put_json(summary, kind="run_summary"))
    if error is None and ctx.config.report.enabled:
        from quantfleet.pipeline.report import run_view
        from quantfleet.report.view import save_view

        # the view is an artifact of the run, archived with its manifest below; closed first
        # so the view shows the run's final status
        m.close("succeeded")
        view = run_view(RunRecord(manifest=m, store=st, spans=ctx.spans, summary=summary))
        m.attach("report_view", save_view(view, st))
    if error is not None:
        st.finish_run(m, status="failed", error=error,
                      timing={"wall_s": outcome.wall_s, "spans": len(ctx.spans.spans)})
        return
    st.finish_run(m, timing={"wall_s": outcome.wall_s, "spans": len(ctx.spans.spans)},
                  metrics={k: v.get("summary") for k, v in outcome.stages.items()})


def run_summary(ctx: RunContext, outcome: RunOutcome) -> dict[str, Any]:
    """What profile, cost and the report need besides spans: wall time, workers, executor and
    the serial baselines (measured for the tournament stage only: its scope is its map)."""
    tour = outcome.stages.get("tournament") or {}
    stage_baselines = {}
    if (tour.get("summary") or {}).get("baseline") and not tour.get("cached"):
        stage_baselines["tournament"] = {**tour["summary"]["baseline"], "scope": "tournament"}
    return {"run_id": outcome.run_id, "command": ctx.manifest.command if ctx.manifest else None,
            "wall_s": outcome.wall_s, "workers": ctx.workers, "executor": ctx.executor_name,
            # why that backend (make_executor: "asked for ray", or auto's reasoning)
            "executor_reason": ctx.executor_reason,
            "store": ctx.store.url, "name": ctx.config.name,
            # no whole-run serial baseline is measured (only the tournament's, above)
            "baseline": None, "stage_baselines": stage_baselines,
            "stages": {k: {"cached": v.get("cached", False), "outputs": v["outputs"],
                           "summary": v["summary"], "seconds": v.get("seconds")}
                       for k, v in outcome.stages.items()}}


@contextmanager
def recorded_run(config: PipelineConfig, command: str, *, record: bool = True,
                 run_id: str | None = None, log: Callable[[str], None] = print,
                 progress: bool = False,
                 after_close: Callable[[RunOutcome], None] | None = None,
                 metrics_if_asked: bool = False
                 ) -> Iterator[tuple[RunContext, RunOutcome]]:
    """The life of one run, the same for a research command and a flow run: its metrics
    served (:func:`start_metrics`), the run opened, the body's stages recorded into the
    outcome, the run closed (``failed`` with the error if the body raises), ``after_close``
    (the flow's report and Prefect artifacts), then the metrics pushed and stopped
    (``metrics_if_asked``: :func:`start_metrics`'s ``asked_only``)."""
    metrics = start_metrics(log, asked_only=metrics_if_asked)
    ctx: RunContext | None = None
    error: BaseException | None = None
    try:
        ctx = open_run(config, command, run_id=run_id if record else None, record=record,
                       log=log, progress=progress, metrics=metrics)
        outcome = RunOutcome(run_id=ctx.run_id, store_url=ctx.store.url if record else None,
                             context=ctx)
        t0 = time.time()
        try:
            yield ctx, outcome
        except BaseException as e:
            outcome.wall_s = time.time() - t0
            close_run(ctx, outcome, error=e)
            raise
        outcome.wall_s = time.time() - t0
        close_run(ctx, outcome)
        if after_close is not None:
            after_close(outcome)
    except BaseException as e:
        error = e
        raise
    finally:
        # after the run is closed (and published): the push carries every byte it wrote
        finish_metrics(metrics, ctx, log, error=error)


def run_stages(config: PipelineConfig, command: str, *, record: bool = True,
               log: Callable[[str], None] = print, progress: bool = False,
               metrics_if_asked: bool = False) -> RunOutcome:
    """Run ``config``'s enabled stages in this process, without Prefect: what a research
    command does (``quantfleet sweep`` is the data and sweep stages of a one-section config).
    Its metrics are served while it runs and pushed when it ends (:func:`recorded_run`;
    ``metrics_if_asked``: only when asked for, :func:`start_metrics`)."""
    with recorded_run(config, command, record=record, log=log, progress=progress,
                      metrics_if_asked=metrics_if_asked) as (ctx, out):
        for stage in enabled_stages(config):
            before = time.time()
            inputs = stage_inputs(config, stage, out.stages)
            result = execute_stage(ctx, stage, inputs)
            out.stages[stage] = record_stage(ctx, stage, inputs, result)
            orchestration_spans(ctx, stage, before, result, time.time())
    return out


def pushgateway_url() -> str | None:
    """``QUANTFLEET_PUSHGATEWAY`` (e.g. ``http://127.0.0.1:9091``), checked; None if unset."""
    from urllib.parse import urlsplit

    from quantfleet.errors import ConfigError

    url = os.environ.get("QUANTFLEET_PUSHGATEWAY", "").strip()
    if not url:
        return None
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError(f"QUANTFLEET_PUSHGATEWAY: {url!r} is not an http(s) URL; set it to "
                          f"the Pushgateway's address, e.g. http://127.0.0.1:9091, or unset it")
    return url.rstrip("/")


def start_metrics(log: Callable[[str], None], *, asked_only: bool = False) -> Any:
    """The run's ``RunMetrics``, served on 127.0.0.1 (``QUANTFLEET_METRICS_PORT``, default a
    free port) while it runs; ``QUANTFLEET_METRICS=0``: none. Pass it to :func:`open_run` and
    end it with :func:`finish_metrics` (which pushes to ``QUANTFLEET_PUSHGATEWAY`` if set).

    Metrics need ``prometheus_client`` (the ``state`` extra): without it a run has none,
    unless they are asked for (``QUANTFLEET_METRICS`` set to anything but 0,
    ``QUANTFLEET_METRICS_PORT`` or ``QUANTFLEET_PUSHGATEWAY`` set), then it stops in one line.

    ``asked_only``: none unless asked for that way (``quantfleet backtest``: one backtest in
    this process, over before a scrape could see it; the variables are still checked)."""
    from quantfleet.errors import ConfigError

    switch = os.environ.get("QUANTFLEET_METRICS", "").strip()
    if switch == "0":
        return None
    gateway = pushgateway_url()  # a bad address fails before the run starts
    port = os.environ.get("QUANTFLEET_METRICS_PORT", "").strip()
    if port and not port.isdigit():
        raise ConfigError(f"QUANTFLEET_METRICS_PORT: {port!r} is not a port number; set it "
                          f"to 0-65535 or unset it (a free port)")
    if asked_only and not (switch or port or gateway):
        return None
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        asked = [k for k, v in (("QUANTFLEET_METRICS", switch), ("QUANTFLEET_METRICS_PORT", port),
                                ("QUANTFLEET_PUSHGATEWAY", gateway)) if v]
        if not asked:
            return None
        raise ConfigError(f"{asked[0]} asks for metrics, which need prometheus_client: "
                          f"pip install 'quantfleet[state]', or unset it (or "
                          f"QUANTFLEET_METRICS=0)") from None
    from quantfleet.observe.metrics import RunMetrics

    m = RunMetrics()
    url = m.serve(int(port) if port else None)
    log(f"metrics: {url}")
    return m


def finish_metrics(metrics: Any, ctx: RunContext | None, log: Callable[[str], None], *,
                   error: BaseException | None = None) -> None:
    """End a run's metrics: push the final values to ``QUANTFLEET_PUSHGATEWAY`` (if set; job
    ``quantfleet``, grouped by ``run_id``), then stop the endpoint. A failed push raises
    unless the run itself failed (``error``), then it is only logged."""
    if metrics is None:
        return
    try:
        gateway = pushgateway_url()
        if gateway:
            run_id = (ctx.run_id if ctx is not None else None) or f"unrecorded-{uuid.uuid4().hex}"
            metrics.push(gateway, grouping={"run_id": run_id})
            log(f"metrics: pushed to {gateway} (job quantfleet, run_id {run_id})")
    except Exception as e:
        if error is None:
            raise
        log(f"metrics: {e}")
    finally:
        metrics.stop()


