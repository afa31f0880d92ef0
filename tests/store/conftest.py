"""Store fixtures: unique memory:// and file:// stores, and a real S3 endpoint (moto's
server in its own process on 127.0.0.1) with a versioned bucket and dummy credentials."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.services import s3_server

BUCKET = "quantfleet-test"
ACCESS_KEY = "AKIAQFTESTKEY0000001"
SECRET_KEY = "qf-Test-Secret-NEVER-LOGGED-7f3a9c"


@pytest.fixture(scope="session")
def s3_endpoint():
    """``http://127.0.0.1:PORT`` of a moto S3 server (a separate process,
    tests/store/moto_server.py, bound to a port the OS picked) with BUCKET in it."""
    with s3_server(BUCKET, ACCESS_KEY, SECRET_KEY) as url:
        yield url


def aws_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture()
def s3_env(s3_endpoint, monkeypatch):
    """Standard AWS environment variables pointing at the moto endpoint."""
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(k, raising=False)
    for k, v in aws_env(s3_endpoint).items():
        monkeypatch.setenv(k, v)
    return s3_endpoint


@pytest.fixture()
def s3_client(s3_env):
    import boto3

    return boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")


@pytest.fixture()
def s3_url(s3_env) -> str:
    return f"s3://{BUCKET}/t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path):
    """The same API on memory:// and file://."""
    from quantfleet.store import Store

    if request.param == "memory":
        url = f"memory://qf-{uuid.uuid4().hex[:10]}"
        yield Store.open(url)
        import fsspec

        fs = fsspec.filesystem("memory")
        if fs.exists(url):
            fs.rm(url, recursive=True)
    else:
        yield Store.open(os.fspath(tmp_path / "lake"))
