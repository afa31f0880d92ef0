"""Where a run's local state lives (checkpoints, Prefect's database and results, reports):
``$QUANTFLEET_HOME`` or ``./.quantfleet``. Results and run records live in the store."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["prefect_env", "state_dir"]


def state_dir() -> Path:
    """``$QUANTFLEET_HOME`` or ``./.quantfleet``, absolute."""
    return Path(os.environ.get("QUANTFLEET_HOME", ".quantfleet")).resolve()


def prefect_env(home: Path, api_url: str | None = None) -> None:
    """Quiet, isolated Prefect settings; must run before prefect is imported."""
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # a run's own log lines (INFO, through the run logger) reach the API, so the UI shows
    # them; the console shows only warnings (the CLI prints its own lines)
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL", "INFO")
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "INFO")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url
