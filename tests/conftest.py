"""Test environment: quiet, local-only services (Ray without auth, no telemetry), and no
writes into the checkout: commands that record a run without ``--store`` write to
``$QUANTFLEET_STORE`` (else ``./lakehouse``) and keep state in ``$QUANTFLEET_HOME`` (else
``./.quantfleet``); the suite points both at a temp folder of the session, removed at its end
(always: a developer's own store or home is never written by the tests). A test
of the defaults themselves sets or deletes the variables and chdirs into its ``tmp_path``.

One local Ray per test session (2 CPUs, no dashboard), started by the first test that asks
for it; Ray-free tests never start it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.pop("RAY_ADDRESS", None)

# set at import, before any test module or subprocess reads them; removed when pytest exits
_SESSION_DIR = tempfile.mkdtemp(prefix="qf-test-session-")
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)
os.environ["QUANTFLEET_STORE"] = os.path.join(_SESSION_DIR, "lakehouse")
os.environ["QUANTFLEET_HOME"] = os.path.join(_SESSION_DIR, "quantfleet-home")

import pytest  # noqa: E402

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass
else:
    # no verdict from the clock: no per-example deadline (a loaded machine runs an example past
    # 200 ms) and no "data generation is too slow" health check; a test's own @settings
    # inherits both
    settings.register_profile("quantfleet", deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("quantfleet")


@pytest.fixture(scope="session")
def ray_session():
    os.environ.pop("RAY_ADDRESS", None)
    import ray

    owner = None
    if not ray.is_initialized():
        from quantfleet.compute.ray import RayExecutor

        # started the way RayExecutor starts an embedded Ray, so tests run its settings
        owner = RayExecutor(workers=2, init_kwargs={"log_to_driver": False,
                                                    "configure_logging": False})
    yield ray
    if owner is not None:
        owner.close()
    ray.shutdown()


@pytest.fixture()
def ray_executor(ray_session):
    """A RayExecutor on the session's local Ray."""
    from quantfleet.compute.ray import RayExecutor

    ex = RayExecutor(workers=2)
    yield ex
    ex.close()
