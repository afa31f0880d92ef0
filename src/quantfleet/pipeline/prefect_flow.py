"""The Prefect flow of ``quantfleet run``, defined once at module level: one task per stage,
each running a plain stage function through the recording code of record.py.

Prefect reads some settings when it is imported: import this module through
``flow.run_pipeline`` (or after ``home.prefect_env``), never at the top of another module.
A flow run's parameters are a token and JSON; the run's context (store, executor, spans) is
looked up by that token, so nothing unserializable goes to the Prefect API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task

from quantfleet.pipeline.record import execute_stage, record_stage, stage_inputs, stage_settings
from quantfleet.pipeline.stages import RunContext, cache_facts, stage_code, stage_key

__all__ = [
    "FlowRun",
    "make_stage_task",
    "pipeline_flow",
    "run_flow",
    "stage_task",
]


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


@dataclass
class FlowRun:
    """What one flow run works on, registered under its token for the flow's lifetime."""

    ctx: RunContext
    stages: list[str]
    code: str
    result_dir: Path
    log: Callable[[str], None]


_RUNS: dict[str, FlowRun] = {}


@task(cache_key_fn=_cache_key, persist_result=True, result_serializer="json",
      cache_result_in_memory=False, retry_condition_fn=_transient)
def stage_task(token: str, stage: str, inputs: dict[str, str], key: str) -> dict[str, Any]:
    """One stage of the flow run ``token``: its result (output refs, summary, seconds)."""
    return {**execute_stage(_RUNS[token].ctx, stage, inputs), "key": key}


@flow(log_prints=False, persist_result=True)
def pipeline_flow(token: str) -> dict[str, dict[str, Any]]:
    """The stages of the run registered as ``token``, in order, each recorded as it ends.

    A stage served from the cache is used only if every output artifact it names is in the
    run's store and verifies (its bytes hash to its name); otherwise it is recomputed."""
    run = _RUNS[token]
    ctx, config = run.ctx, run.ctx.config
    done: dict[str, dict[str, Any]] = {}
    for stage in run.stages:
        inputs = stage_inputs(config, stage, done)
        settings = stage_settings(config, stage)
        code = stage_code(stage) + run.code
        key = stage_key(stage, inputs, {**settings, **cache_facts(ctx, stage)}, code)
        t = stage_task.with_options(
            name=stage, retries=config.prefect.retries,
            retry_delay_seconds=_backoff(config.prefect.retry_delay_s, config.prefect.retries),
            result_storage=run.result_dir)
        state = t(token, stage, inputs, key, return_state=True)
        result = state.result()
        cached = state.name == "Cached"
        if cached:
            missing = _unverified(ctx, result)
            if missing:
                run.log(f"stage {stage}: cached result names {len(missing)} artifact(s) that "
                        f"are not in {ctx.store.url} or do not verify ({', '.join(missing)}); "
                        f"recomputing")
                state = t.with_options(refresh_cache=True)(token, stage, inputs, key,
                                                           return_state=True)
                result = state.result()
                cached = False
        done[stage] = record_stage(ctx, stage, inputs, result, cached=cached,
                                   settings={**settings, "cache_key": key, "code": code})
        run.log(f"stage {stage}: " + (f"served from cache (computed in {result['seconds']:.1f} s)"
                                      if cached else f"done in {result['seconds']:.1f} s"))
    return done


def _unverified(ctx: RunContext, result: dict[str, Any]) -> list[str]:
    """Names of the outputs of a cached stage result missing from, or corrupt in, the store."""
    from quantfleet.store import ArtifactRef

    return [name for name, d in result["outputs"].items()
            if not ctx.store.verify(ArtifactRef.from_dict(d))]


def run_flow(run: FlowRun, name: str, run_name: str) -> dict[str, dict[str, Any]]:
    """Run ``pipeline_flow`` on ``run``; the registration lasts as long as the flow run."""
    import uuid

    token = uuid.uuid4().hex
    _RUNS[token] = run
    try:
        return pipeline_flow.with_options(name=name, flow_run_name=run_name,
                                          result_storage=run.result_dir)(token)
    finally:
        _RUNS.pop(token, None)
