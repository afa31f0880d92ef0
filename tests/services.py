"""Real services for tests, on 127.0.0.1 only, each started as its own process and stopped by
its PID: a Prometheus and a Pushgateway (Debian's packages, installed by ``make
prometheus``), a Prefect server (``prefect server start``) and moto's S3 server
(tests/store/moto_server.py). Every wait is bounded and waits for a condition, never a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PROMETHEUS", "PUSHGATEWAY", "WAIT_S", "Prometheus", "free_port", "get",
           "get_json", "post_json", "prefect_server", "prometheus", "pushgateway", "s3_server",
           "stop", "until"]

PROMETHEUS = shutil.which("prometheus")
PUSHGATEWAY = shutil.which("prometheus-pushgateway")
WAIT_S = 120.0  # bound of every wait (the machine may be loaded)
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def get_json(url: str, timeout: float = 30) -> object:
    return json.loads(get(url, timeout))


def post_json(url: str, body: object, timeout: float = 30) -> object:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def until(what: str, fn, proc: subprocess.Popen | None = None, wait_s: float = WAIT_S):
    """``fn()`` once it returns something truthy; fails after ``wait_s`` (or if ``proc``
    exits)."""
    stop_at = time.monotonic() + wait_s
    while True:
        try:
            got = fn()
        except OSError:
            got = None
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process exited with code {proc.returncode}")
        if time.monotonic() > stop_at:
            pytest.fail(f"{what}: not within {wait_s:g} s")
        time.sleep(0.2)


def stop(procs: list[subprocess.Popen]) -> None:
    """Terminate what a fixture started, by PID; kill what does not end within 30 s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextlib.contextmanager
def pushgateway(root: Path) -> Iterator[str]:
    """A Pushgateway on a free port; yields its URL."""
    port = free_port()
    p = subprocess.Popen([PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=open(root / "pushgw.log", "w"))
    try:
        url = f"http://127.0.0.1:{port}"
        until("pushgateway ready", lambda: get(f"{url}/-/ready") is not None, p)
        yield url
    finally:
        stop([p])


class Prometheus:
    """A running Prometheus: ``query`` (instant PromQL) and ``value`` (the one sample)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> list[dict]:
        q = urllib.parse.urlencode({"query": promql})
        doc = get_json(f"{self.url}/api/v1/query?{q}")
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def value(self, promql: str) -> float:
        res = self.query(promql)
        assert len(res) == 1, (promql, res)
        return float(res[0]["value"][1])


@contextlib.contextmanager
def prometheus(root: Path, *, targets: dict[str, str],
               honor_labels: tuple[str, ...] = ()) -> Iterator[Prometheus]:
    """A Prometheus scraping every second ``targets`` (job name -> host:port) with its own
    storage under ``root``; jobs in ``honor_labels`` keep the pushed labels (Pushgateway)."""
    cfg = root / "prometheus.yml"
    jobs = "".join(
        f"  - job_name: {job}\n" + ("    honor_labels: true\n" if job in honor_labels else "")
        + f"    static_configs:\n      - targets: ['{target}']\n"
        for job, target in targets.items())
    cfg.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                   f"scrape_configs:\n{jobs}")
    port = free_port()
    p = subprocess.Popen(
        [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={root / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=open(root / "prometheus.log", "w"))
    try:
        url = f"http://127.0.0.1:{port}"
        until("prometheus ready", lambda: get(f"{url}/-/ready") is not None, p)
        yield Prometheus(url)
    finally:
        stop([p])


@contextlib.contextmanager
def prefect_server(root: Path, wait_s: float = 180.0) -> Iterator[str]:
    """``prefect server start`` on a free port with its own PREFECT_HOME (a SQLite database
    under ``root``), in its own session; yields the API URL once ``/api/health`` answers."""
    exe = Path(sys.executable).with_name("prefect")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(root / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED":
                "false", "DO_NOT_TRACK": "1", "PREFECT_LOGGING_LEVEL": "WARNING"})
    p = subprocess.Popen([str(exe), "server", "start", "--host", "127.0.0.1", "--port",
                          str(port)], env=env, stdin=subprocess.DEVNULL,
                         stdout=open(root / "prefect.log", "w"), stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        api = f"http://127.0.0.1:{port}/api"
        until("prefect server healthy", lambda: get(f"{api}/health", 2) is not None, p, wait_s)
        yield api
    finally:
        try:
            os.killpg(p.pid, 15)  # the server and the workers it forked: its own group
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait()


@contextlib.contextmanager
def s3_server(bucket: str, access_key: str, secret_key: str) -> Iterator[str]:
    """moto's S3 server (tests/store/moto_server.py, its own process, a port the OS picked)
    with ``bucket`` created and versioned; yields ``http://127.0.0.1:PORT``."""
    pytest.importorskip("moto.server", reason="moto[server] not installed")
    proc = subprocess.Popen([sys.executable, "-m", "tests.store.moto_server"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        first = proc.stdout.readline().strip()  # written once it listens; empty: it exited
        if not first.isdigit():
            proc.wait()
            pytest.fail(f"moto server exited with {proc.returncode} before listening")
        url = f"http://127.0.0.1:{int(first)}"
        import boto3

        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id=access_key, aws_secret_access_key=secret_key)
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield url
    finally:
        proc.stdin.close()  # asks it to stop
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
