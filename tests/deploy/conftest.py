"""Session fixtures of the deploy tests: one real multi-process Ray cluster (head + worker,
tests/deploy/native_cluster.py) and one Prefect server, shared by the Ray Jobs tests and the
native smoke of the compose topology; each stopped by PID at the end of the session."""

from __future__ import annotations

import pytest

from quantfleet.cluster import _pid_alive


@pytest.fixture(scope="session")
def native_cluster(tmp_path_factory):
    pytest.importorskip("ray.job_submission", reason="ray[default] is not installed")
    from tests.deploy.native_cluster import start_cluster

    c = start_cluster(tmp_path_factory.mktemp("native-ray"))
    try:
        yield c
    finally:
        c.stop()
        assert not any(_pid_alive(p.pid) for p in c.procs), "a `ray start` outlived its stop"


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """The API URL of a ``prefect server start`` of this session (its own SQLite home)."""
    from tests.services import prefect_server

    with prefect_server(tmp_path_factory.mktemp("prefect-server")) as api:
        yield api
