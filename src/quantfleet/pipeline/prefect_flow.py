"""The Prefect flow of ``quantfleet run``, defined once at module level and deployable: its
one required parameter is the validated config (``PipelineConfig.model_dump(mode="json")``),
so ``pipeline_flow.serve(...)`` (``quantfleet serve``), ``prefect deploy`` and a run started
from the UI all execute the same pipeline as the CLI.

Each stage is a task running a plain stage function through the recording code of record.py;
a task receives its upstream stages' results, so the UI draws the DAG; log lines go through
Prefect's run logger (the UI shows them); each run publishes a markdown artifact (verdict,
speedup, cost), a table artifact (leaderboard top 20) and a link to its report.

Prefect reads some settings when it is imported: import this module through
``flow.run_pipeline`` (or after ``home.prefect_env``), never at the top of another module.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from quantfleet.pipeline.config import PipelineConfig
from quantfleet.pipeline.record import (
    RunOutcome,
    enabled_stages,
    execute_stage,
    orchestration_spans,
    preflight,
    record_stage,
    recorded_run,
    stage_inputs,
    stage_settings,
)
from quantfleet.pipeline.stages import DEPENDS, RunContext, cache_facts, stage_code, stage_key

__all__ = [
    "FLOW_NAME",
    "Session",
    "execute_pipeline",
    "make_stage_task",
    "pipeline_flow",
    "run_flow",
    "run_summary_markdown",
    "stage_task",
]

FLOW_NAME = "quantfleet-pipeline"


def _cache_key(_context: Any, parameters: dict[str, Any]) -> str:
    return parameters["key"]


def _transient(_task: Any, _run: Any, state: Any) -> bool:
    """Retry what may pass next time; bad input (a QuantfleetError) never will."""
    from quantfleet.errors import QuantfleetError

    try:
        state.result()
    except QuantfleetError:
        return False
    except Exception:
        return True
    return True


def _backoff(retry_delay_s: float, retries: int) -> list[float]:
    """Exponential: delay, 2·delay, 4·delay, ..."""
    return [retry_delay_s * 2 ** i for i in range(max(retries, 1))]


def make_stage_task(name: str, body: Callable[..., dict[str, Any]], *, retries: int,
                    retry_delay_s: float, result_dir: Path) -> Any:
    """A Prefect task around ``body(..., key)``, cached under its ``key`` parameter, its
    result persisted as JSON in ``result_dir``, retried with exponential backoff."""
    return task(body, name=name, retries=retries,
                retry_delay_seconds=_backoff(retry_delay_s, retries),
                cache_key_fn=_cache_key, persist_result=True, result_storage=result_dir,
                result_serializer="json", cache_result_in_memory=False,
                retry_condition_fn=_transient)


# the contexts of the flow runs going on in this process, by token: a task looks its run's
# store, executor and spans up here (nothing unserializable goes to the Prefect API)
_CONTEXTS: dict[str, RunContext] = {}


@task(cache_key_fn=_cache_key, persist_result=True, result_serializer="json",
      cache_result_in_memory=False, retry_condition_fn=_transient)
def stage_task(token: str, stage: str, inputs: dict[str, str],
               upstream: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    """One stage of the flow run ``token``: its result (output refs, summary, seconds).

    ``upstream`` holds the results of the stages it reads from (what links the tasks in the
    UI's graph); ``inputs`` are the hashes of the artifacts it reads from them."""
    return {**execute_stage(_CONTEXTS[token], stage, inputs), "key": key}


@dataclass
class Session:
    """An in-process caller of the flow (``run_pipeline``): where its log lines go and where
    the flow leaves the :class:`RunOutcome` (with the drivers' result objects)."""

    log: Callable[[str], None]
    outcome: RunOutcome | None = None


_SESSIONS: dict[str, Session] = {}


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters or {}
    name = (p.get("config") or {}).get("name") or "quantfleet-run"
    return f"{name} {p['run_id']}" if p.get("run_id") else str(name)


@flow(name=FLOW_NAME, flow_run_name=_flow_run_name, log_prints=False, persist_result=True,
      validate_parameters=False)
def pipeline_flow(config: dict[str, Any], run_id: str | None = None,
                  record: bool = True) -> dict[str, Any]:
    """The pipeline of ``config`` (a validated :class:`PipelineConfig` as JSON): every
    enabled stage in order, recorded as one run in the config's store; returns the run's id,
    its stages (cached or not, output hashes) and its report path."""
    cfg = PipelineConfig.model_validate(config)
    logger = get_run_logger()
    session = _SESSIONS.get(run_id or "")
    say = session.log if session is not None else (lambda m: None)

    def log(message: str) -> None:
        say(message)
        logger.info(message)

    if session is None:  # run from a deployment or the UI: nobody checked the config yet
        preflight(cfg)
    outcome = execute_pipeline(cfg, run_id=run_id, record=record, log=log)
    if session is not None:
        session.outcome = outcome
    return {"run_id": outcome.run_id, "report": str(outcome.report) if outcome.report else None,
            "stages": {k: {"cached": v["cached"], "outputs": v["outputs"]}
                       for k, v in outcome.stages.items()}}


def execute_pipeline(config: PipelineConfig, *, run_id: str | None, record: bool,
                     log: Callable[[str], None]) -> RunOutcome:
    """The body of :func:`pipeline_flow` (inside a flow run): the run's life as a research
    command's (:func:`~quantfleet.pipeline.record.recorded_run`), each stage a cached task,
    and once the run is closed its report and Prefect artifacts."""
    from quantfleet.pipeline.home import state_dir

    def publish(outcome: RunOutcome) -> None:
        if not record:
            return
        if config.report.enabled:
            from quantfleet.pipeline.report import write_report

            outcome.report = write_report(outcome.store_url, outcome.run_id)
        _publish(outcome, log)

    result_dir = state_dir() / "prefect-results"
    result_dir.mkdir(parents=True, exist_ok=True)
    # an unrecorded run's artifacts live in a throwaway store: a cache entry would dangle
    salt = "" if record else f"-unrecorded-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex
    with recorded_run(config, "run", record=record, run_id=run_id, log=log,
                      after_close=publish) as (ctx, outcome):
        _CONTEXTS[token] = ctx
        try:
            # each stage's final task state: a state handed to a task is resolved to its result
            # and recorded as that task's upstream (the edges of the UI's graph)
            states: dict[str, Any] = {}
            for stage in enabled_stages(config):
                before = time.time()
                inputs = stage_inputs(config, stage, outcome.stages)
                srcs = {src for src, _ in DEPENDS[stage].values()}
                if stage == "returns" and "market" in inputs:
                    srcs = {"data"}
                upstream = {src: states[src] for src in sorted(srcs) if src in states}
                states[stage], result, cached, key, code = _run_stage(
                    ctx, stage, inputs, upstream, token, salt, result_dir, log)
                outcome.stages[stage] = record_stage(
                    ctx, stage, inputs, result, cached=cached,
                    settings={**stage_settings(config, stage), "cache_key": key, "code": code})
                log(f"stage {stage}: " + (
                    f"served from cache (computed in {result['seconds']:.1f} s)"
                    if cached else f"done in {result['seconds']:.1f} s"))
                # Prefect's task orchestration and the manifest save around the stage's function
                orchestration_spans(ctx, stage, before, {} if cached else result, time.time())
        finally:
            _CONTEXTS.pop(token, None)
    return outcome


def _run_stage(ctx: RunContext, stage: str, inputs: dict[str, str], upstream: dict[str, Any],
               token: str, salt: str, result_dir: Path, log: Callable[[str], None]
               ) -> tuple[Any, dict[str, Any], bool, str, str]:
    """Run ``stage``'s task; a cache hit is used only if every output it names is in the
    run's store and verifies (else the stage is recomputed). Returns (final state, result,
    cached, key, code)."""
    config = ctx.config
    code = stage_code(stage) + salt
    key = stage_key(stage, inputs, {**stage_settings(config, stage), **cache_facts(ctx, stage)},
                    code)
    t = stage_task.with_options(
        name=stage, task_run_name=stage, retries=config.prefect.retries,
        retry_delay_seconds=_backoff(config.prefect.retry_delay_s, config.prefect.retries),
        result_storage=result_dir)
    state = t(token, stage, inputs, upstream, key, return_state=True)
    result = state.result()
    cached = state.name == "Cached"
    if cached:
        missing = _unverified(ctx, result)
        if missing:
            log(f"stage {stage}: cached result names {len(missing)} artifact(s) that are not "
                f"in {ctx.store.url} or do not verify ({', '.join(missing)}); recomputing")
            state = t.with_options(refresh_cache=True)(token, stage, inputs, upstream, key,
                                                       return_state=True)
            result = state.result()
            cached = False
    return state, result, cached, key, code


def _unverified(ctx: RunContext, result: dict[str, Any]) -> list[str]:
    """Names of the outputs of a cached stage result missing from, or corrupt in, the store."""
    from quantfleet.store import ArtifactRef

    return [name for name, d in result["outputs"].items()
            if not ctx.store.verify(ArtifactRef.from_dict(d))]


def run_summary_markdown(view: Any, report: Path | None) -> str:
    """The run's verdict, speedup and simulated cost in a few markdown lines (what the UI
    shows as the run's ``summary`` artifact), from its report view."""
    s = view.summary or {}
    lines = [f"# {s.get('name') or 'quantfleet run'} — {s.get('status', '')}",
             f"{s.get('command', 'run')} on {s.get('executor')} × {s.get('workers')} workers, "
             f"{float(s.get('wall_s') or 0):.1f} s wall"]
    board = getattr(view, "leaderboard", None)
    if board is not None and len(board):
        top = board.iloc[0]
        lines += ["", "## Verdict",
                  f"Leaderboard winner: **{top['strategy']}/{top['asset']}**, "
                  f"out-of-sample Sharpe {float(top['oos_sharpe']):.2f}"]
    for k, v in (getattr(view, "overfit", None) or {}).items():
        for line in (v if isinstance(v, list) else [v]):
            if line:
                lines.append(f"- {k}: {line}" if k != "verdict" else f"- {line}")
    sp = getattr(view, "speedup", None)
    lines += ["", "## Speedup"]
    lines.append(f"{sp.get('text') or sp}" if sp else
                 "n/a: no sequential baseline was measured for this run")
    cost = getattr(view, "cost_what_if", None)
    if cost is not None and len(cost):
        from quantfleet.report.build import cost_label

        row = cost.iloc[-1].to_dict()
        lines += ["", "## Simulated cost",
                  f"{row.get('setup') or row.get('nodes')}: "
                  f"{float(row.get('wall_s', float('nan'))):.1f} s, "
                  f"${float(row.get('cost_usd', float('nan'))):.4f} "
                  f"({cost_label(getattr(view, 'cost_assumptions', None))})"]
    if report is not None:
        lines += ["", f"Report: {report.as_uri()}"]
    return "\n".join(lines)


def _publish(outcome: RunOutcome, log: Callable[[str], None]) -> None:
    """The run's markdown summary, leaderboard table (top 20) and report link as artifacts
    of this flow run, keyed by the config's name."""
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    from quantfleet.pipeline.run_record import load_run
    from quantfleet.report.view import load_view

    ctx = outcome.context
    key = "".join(c if c.isalnum() else "-" for c in ctx.config.name.lower()).strip("-")
    m = ctx.store.get_run(outcome.run_id)
    ref = m.output("report_view")
    view = load_view(ctx.store, ref) if ref else None
    if view is None:
        view = _view_of(load_run(ctx.store, outcome.run_id))
    create_markdown_artifact(run_summary_markdown(view, outcome.report), key=f"{key}-summary",
                             description=f"run {outcome.run_id}")
    board = getattr(view, "leaderboard", None)
    if board is not None and len(board):
        rows = board.head(20)
        cols = [c for c in ("strategy", "asset", "oos_sharpe", "oos_total_return",
                            "oos_max_drawdown", "bh_sharpe", "pair_dsr", "dsr", "pbo")
                if c in rows.columns]
        create_table_artifact(
            [{c: (round(float(r[c]), 4) if isinstance(r[c], float) else r[c]) for c in cols}
             for r in rows.to_dict("records")],
            key=f"{key}-leaderboard", description=f"leaderboard top 20, run {outcome.run_id}")
    if outcome.report is not None:
        create_link_artifact(outcome.report.as_uri(), link_text="HTML report",
                             key=f"{key}-report", description=f"run {outcome.run_id}")
    log(f"prefect artifacts: {key}-summary, {key}-leaderboard, {key}-report")


def _view_of(run: Any) -> Any:
    from quantfleet.pipeline.report import run_view

    return run_view(run)


def run_flow(config: PipelineConfig, *, run_id: str, record: bool,
             log: Callable[[str], None]) -> RunOutcome:
    """Run :func:`pipeline_flow` on ``config`` in this process and return its outcome."""
    session = Session(log=log)
    _SESSIONS[run_id] = session
    try:
        pipeline_flow(config.model_dump(mode="json"), run_id=run_id, record=record)
    finally:
        _SESSIONS.pop(run_id, None)
    assert session.outcome is not None
    return session.outcome
