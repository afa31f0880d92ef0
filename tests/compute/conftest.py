"""One local Ray per test session (2 CPUs, no dashboard); Ray-free tests never start it."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ray_session():
    os.environ.pop("RAY_ADDRESS", None)
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture()
def ray_executor(ray_session):
    from quantfleet.compute.ray import RayExecutor

    ex = RayExecutor(workers=2)
    yield ex
    ex.close()
