"""One Prefect test harness per session (its start is slow; see docs/BENCHMARKS.md), isolated
state dirs."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    home = tmp_path_factory.mktemp("qfhome")
    os.environ["QUANTFLEET_HOME"] = str(home)
    os.environ["QUANTFLEET_METRICS"] = "0"
    from quantfleet.pipeline.flow import prefect_env

    prefect_env(home)
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield home
