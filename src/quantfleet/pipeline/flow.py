"""``run_pipeline``: a config's stages as a flow run of the module-level Prefect flow of
prefect_flow.py, recorded as one run; heavy fan-out stays inside the stages on the Executor.

Orchestration wraps logic, never holds it: each task body runs a plain stage function
(stages.py) through the same recording code a research command uses (record.py). A stage is
cached under a key made of its input artifact hashes, its settings, the store, the library
versions, the data source's fingerprint and the code the stage runs (stages.stage_key), with
its result (the output artifact refs) persisted by Prefect, so a re-run after a crash or a
SIGKILL skips finished stages and produces the same outputs. Retries back off exponentially.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from quantfleet.pipeline.config import PipelineConfig
from quantfleet.pipeline.home import prefect_env, state_dir
from quantfleet.pipeline.record import RunOutcome, preflight

__all__ = ["UI_URL", "RunOutcome", "prefect_api", "prefect_env", "run_pipeline", "state_dir"]


def run_pipeline(config: PipelineConfig, *, run_id: str | None = None, record: bool = True,
                 log: Callable[[str], None] = print) -> RunOutcome:
    """Run every enabled stage of ``config`` as a flow run of the module-level
    ``prefect_flow.pipeline_flow``, recorded as one run in ``config.store`` (``record=False``:
    nothing kept, no stage served from or kept in the cache, whose artifacts would be gone);
    return what each stage did. Bad input fails here, before the flow starts, in one line."""
    from quantfleet.store import new_run_id

    preflight(config)
    api, said = prefect_api(config.prefect.api_url)
    prefect_env(state_dir(), api)
    log(f"prefect API: {said}")
    from quantfleet.pipeline.prefect_flow import run_flow

    return run_flow(config, run_id=run_id or new_run_id(), record=record, log=log)


UI_URL = "http://127.0.0.1:4200/api"
"""Where ``quantfleet ui`` serves the Prefect API by default (``QUANTFLEET_UI_API`` overrides)."""


def prefect_api(configured: str | None) -> tuple[str | None, str]:
    """The Prefect API a run uses (None: Prefect's own default) and how to say so: the
    configured one (``--prefect-api`` / ``prefect.api_url`` / ``$PREFECT_API_URL``), else the
    server of ``quantfleet ui`` when one answers on 127.0.0.1, else a temporary local server
    started for this run. When Prefect is already imported in this process (a test harness,
    an embedding program) it keeps the API it has."""
    import sys

    if configured:
        return configured, f"{configured} (configured)"
    if os.environ.get("PREFECT_API_URL"):
        return None, f"{os.environ['PREFECT_API_URL']} ($PREFECT_API_URL)"
    if "prefect" in sys.modules:
        return None, "the API this process's Prefect already uses"
    url = os.environ.get("QUANTFLEET_UI_API", UI_URL)
    if _healthy(url):
        return url, f"{url} (the server of `quantfleet ui`)"
    return None, ("a temporary local server started for this run (~15 s; `quantfleet ui` "
                  "keeps one up, and runs use it)")


def _healthy(api_url: str) -> bool:
    """True if a Prefect API answers ``GET /health`` at ``api_url`` within a second."""
    import urllib.request

    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=1.0) as r:
            return r.status == 200
    except (OSError, ValueError):
        return False
