"""``submit`` and ``jobs status|logs|stop``: a pipeline run as a Ray job on a cluster.

``submit CONFIG --address http://HEAD:8265`` ships the config (and a local data file it
names) as the job's ``working_dir``, optionally quantfleet's own code as ``py_modules``, and
runs ``python -m quantfleet.cli run`` on the cluster with ``--ray-address "$RAY_ADDRESS"``
(Ray Jobs sets it to the cluster for the job's driver), so the run's Ray executor fans out
over the cluster's workers. The run id is chosen here (``run --run-id``) and the job id is
``quantfleet-<run id>``, so both are known before the job starts. Ray is imported inside the
functions (``ray.job_submission.JobSubmissionClient``, the dashboard's REST API).
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from quantfleet.commands.options import AsJson, StoreUrl, fail, print_json
from quantfleet.errors import ConfigError, ExecutionError

__all__ = ["JOB_PREFIX", "TERMINAL", "Address", "JobArg", "app", "client", "jobs_logs",
           "jobs_status", "jobs_stop", "submit"]

JOB_PREFIX = "quantfleet-"
"""A submitted run's job id is ``quantfleet-<run id>``."""
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")

app = typer.Typer(help="Ray jobs on a cluster (started by `quantfleet submit`): status, logs, "
                       "stop.", no_args_is_help=True)

Address = Annotated[str | None, typer.Option(
    "--address", help="The cluster's Ray dashboard (Jobs API), http://HEAD:8265 (default: "
                      "$RAY_API_SERVER_ADDRESS, as for `ray job`).")]
JobArg = Annotated[str, typer.Argument(help="Job id (quantfleet-<run id> for a submitted run) "
                                            "or the run id itself.")]


def _address(address: str | None) -> str:
    a = (address or os.environ.get("RAY_API_SERVER_ADDRESS") or "").strip()
    if not a:
        raise ConfigError("--address: give the cluster's Ray dashboard URL, e.g. "
                          "--address http://HEAD:8265 (or set RAY_API_SERVER_ADDRESS)")
    if not a.startswith(("http://", "https://")):
        raise ConfigError(f"--address {a!r}: expected the Ray dashboard's http(s) URL, e.g. "
                          f"http://HEAD:8265 (not the GCS HOST:6379 or ray://HOST:10001)")
    return a.rstrip("/")


def client(address: str | None) -> Any:
    """A ``JobSubmissionClient`` for ``address``; an unreachable or bad one raises
    ``ConfigError`` (one line; the CLI exits 2)."""
    a = _address(address)
    # RAY_AUTH_MODE / RAY_AUTH_TOKEN are left to the user: a token-auth cluster needs them
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(a)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ConfigError(f"--address {a}: cannot reach Ray's job API ({' '.join(str(e).split())}"
                          f"); is the head started with the dashboard (ray start --head "
                          f"--include-dashboard=true) and its port (8265) reachable?") from None


def _job_id(job: str) -> str:
    return job if job.startswith(("quantfleet-", "raysubmit_")) else JOB_PREFIX + job


def _status(c: Any, job: str) -> str:
    try:
        return str(c.get_job_status(job).value)
    except RuntimeError as e:  # the API answers 404 for an unknown id
        raise ConfigError(f"job {job!r}: not on this cluster ({' '.join(str(e).split())[:200]})"
                          f"; `ray job list --address ...` lists the jobs") from None


def _store_for_job(store: str) -> str:
    """A local folder store as an absolute path (the job's driver runs in another directory,
    on the head node); URLs unchanged."""
    if store.startswith("memory://"):
        raise ConfigError(f"--store {store}: a memory:// store lives and dies with the job's "
                          f"driver; give a store the cluster shares (s3://...) or a folder")
    if "://" in store and not store.startswith("file://"):
        return store
    return str(Path(store.removeprefix("file://")).expanduser().resolve())


def _stream(c: Any, job: str) -> None:
    """Print the job's log as it comes, until the job ends (Ctrl-C detaches)."""
    import asyncio

    async def tail() -> None:
        async for chunk in c.tail_job_logs(job):
            typer.echo(chunk, nl=False)

    asyncio.run(tail())


def _wait_terminal(c: Any, job: str, wait_s: float) -> str:
    import time

    deadline = time.monotonic() + wait_s
    st = _status(c, job)
    while st not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        st = _status(c, job)
    return st


def submit(
    config: Annotated[Path, typer.Argument(help="Pipeline config (TOML) to run on the cluster.")],
    address: Address = None,
    store: StoreUrl = None,
    executor: Annotated[str, typer.Option("--executor", help="The run's executor on the cluster (executor.kind); ray: its tasks go to the cluster's workers.")] = "ray",
    prefect_api: Annotated[str | None, typer.Option("--prefect-api", help="Prefect API the run reports to, as the cluster sees it (default: a temporary local server on the head for the run).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any config field: KEY=VALUE, passed to `quantfleet run --set` (checked here first).")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE for the job's environment (runtime_env env_vars); repeatable, e.g. --env QUANTFLEET_PUSHGATEWAY=http://PGW:9091.")] = None,
    ship_package: Annotated[bool, typer.Option("--ship-package", help="Ship this quantfleet package to the cluster (runtime_env py_modules), for a cluster whose Python has the dependencies but not this quantfleet.")] = False,
    python: Annotated[str, typer.Option("--python", help="The cluster's Python command that runs quantfleet.")] = "python",
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Print the job and run ids and return; do not stream the logs.")] = False,
    as_json: AsJson = False,
) -> None:
    """Run CONFIG's pipeline as a Ray job on a cluster (Ray Jobs API): ships the config,
    streams the job's log until it ends and prints the run id; exit code 1 if the job fails.

    The run is recorded in --store, else $QUANTFLEET_STORE, else the config's store; use a
    store the cluster shares (s3://...) unless the cluster runs on this machine."""
    import quantfleet
    from quantfleet.commands.pipeline import _parse_sets
    from quantfleet.pipeline.config import load_config
    from quantfleet.store import new_run_id

    cfg = load_config(config)  # bad config or overrides fail here, before anything is sent
    sets = list(set_ or [])
    cfg = cfg.with_overrides({**_parse_sets(sets), "executor.kind": executor,
                              "prefect.api_url": prefect_api})
    env_vars: dict[str, str] = {}
    for item in env or []:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            fail(f"--env {item!r}: expected KEY=VALUE, e.g. --env AWS_ENDPOINT_URL=http://s3:9000")
        env_vars[k.strip()] = v
    store_to = _store_for_job(store or os.environ.get("QUANTFLEET_STORE") or cfg.store)
    c = client(address)  # an unreachable cluster fails before anything is built
    run_id = new_run_id()
    job_id = JOB_PREFIX + run_id
    workdir = Path(tempfile.mkdtemp(prefix="qf-submit-"))
    try:
        shutil.copyfile(config, workdir / "config.toml")
        args = [python, "-m", "quantfleet.cli", "run", "config.toml", "--run-id", run_id,
                "--store", store_to, "--executor", executor, "--no-open"]
        src = Path(cfg.data.source).expanduser()
        if src.is_file() or src.is_dir():  # a local data file or folder travels with the job
            (shutil.copytree if src.is_dir() else shutil.copyfile)(src, workdir / src.name)
            args += ["--data", src.name]
        if prefect_api:
            args += ["--prefect-api", prefect_api]
        for s in sets:
            args += ["--set", s]
        # Ray Jobs sets RAY_ADDRESS for the driver: the run's executor joins the cluster
        entrypoint = shlex.join(args) + ' --ray-address "$RAY_ADDRESS"'
        runtime_env: dict[str, Any] = {"working_dir": str(workdir),
                                       "env_vars": {"QUANTFLEET_HOME": ".quantfleet",
                                                    **env_vars}}
        if ship_package:
            runtime_env["py_modules"] = [str(Path(quantfleet.__file__).parent)]
            runtime_env["excludes"] = ["__pycache__", "*.nbi", "*.nbc", "*.pyc"]
        try:
            c.submit_job(entrypoint=entrypoint, submission_id=job_id, runtime_env=runtime_env,
                         metadata={"quantfleet_run_id": run_id, "config": cfg.name,
                                   "store": store_to})
        except (RuntimeError, ValueError, OSError) as e:
            raise ExecutionError(f"submitting to {_address(address)} failed: "
                                 f"{' '.join(str(e).split())[:400]}") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # uploaded by submit_job
    info = {"job_id": job_id, "run_id": run_id, "store": store_to,
            "address": _address(address), "entrypoint": entrypoint}
    if no_wait:
        if as_json:
            print_json({**info, "status": _status(c, job_id)})
        else:
            typer.echo(f"submitted job {job_id} (run {run_id}) to {info['address']}")
            typer.echo(f"  follow it: quantfleet jobs logs {job_id} --follow --address "
                       f"{info['address']}")
        return
    if not as_json:
        typer.echo(f"submitted job {job_id} (run {run_id}) to {info['address']}; streaming its "
                   f"log (Ctrl-C detaches, the job goes on)")
        try:
            _stream(c, job_id)
        except KeyboardInterrupt:
            typer.echo(f"\ndetached; the job goes on: quantfleet jobs status {job_id} "
                       f"--address {info['address']}")
            raise typer.Exit(130) from None
    status = _wait_terminal(c, job_id, float("inf"))
    if as_json:
        print_json({**info, "status": status})
    else:
        typer.echo(f"job {job_id}: {status}")
        typer.echo(f"run {run_id}: quantfleet runs show {run_id} --store {store_to}")
    if status != "SUCCEEDED":
        raise typer.Exit(1)


@app.command("status")
def jobs_status(job: JobArg, address: Address = None, as_json: AsJson = False) -> None:
    """A job's status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED), its run id and times."""
    c = client(address)
    jid = _job_id(job)
    _status(c, jid)  # an unknown id: one line
    d = c.get_job_info(jid)
    out = {"job_id": jid, "status": str(d.status.value),
           "run_id": (d.metadata or {}).get("quantfleet_run_id"),
           "store": (d.metadata or {}).get("store"), "message": d.message,
           "entrypoint": d.entrypoint, "start_time_ms": d.start_time, "end_time_ms": d.end_time}
    if as_json:
        print_json(out)
        return
    for k, v in out.items():
        typer.echo(f"{k:>14}: {'n/a' if v is None else v}")


@app.command("logs")
def jobs_logs(job: JobArg, address: Address = None,
              follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until the job ends.")] = False) -> None:
    """A job's log (its driver's stdout and stderr) so far, or streamed with --follow."""
    c = client(address)
    jid = _job_id(job)
    _status(c, jid)
    if follow:
        try:
            _stream(c, jid)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        return
    typer.echo(c.get_job_logs(jid), nl=False)


@app.command("stop")
def jobs_stop(job: JobArg, address: Address = None,
              wait_s: Annotated[float, typer.Option("--wait-s", help="Wait up to this long for the job to end.")] = 60.0) -> None:
    """Stop a job (SIGTERM to its driver, then SIGKILL) and wait for it to end."""
    c = client(address)
    jid = _job_id(job)
    before = _status(c, jid)
    if before in TERMINAL:
        typer.echo(f"job {jid}: already {before}")
        return
    c.stop_job(jid)
    status = _wait_terminal(c, jid, wait_s)
    typer.echo(f"job {jid}: {status}")
    if status not in TERMINAL:
        typer.echo(f"job {jid} has not ended within {wait_s:g} s (it was asked to stop)", err=True)
        raise typer.Exit(1)
