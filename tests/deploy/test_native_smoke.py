"""Native smoke of the compose topology (deploy/compose.yaml), with no Docker: the same services
as separate processes on 127.0.0.1, and one pipeline run through all of them.

| compose service | here |
| --- | --- |
| ray-head, ray-worker | ``ray start --head --num-cpus=0`` and ``ray start --address --num-cpus=2`` (tests/deploy/native_cluster.py) |
| minio + minio-init | moto's S3 server, a versioned bucket (tests/services.py ``s3_server``) |
| prefect-server (+ postgres) | ``prefect server start`` on its own SQLite home |
| pushgateway, prometheus | Debian's ``prometheus-pushgateway`` and ``prometheus``, scraping the Pushgateway (``honor_labels``) and each Ray node's metrics port, as deploy/prometheus/prometheus.yml does |

The run is submitted as a Ray job (``quantfleet submit``) with the settings every compose
container has (store ``s3://…``, ``AWS_ENDPOINT_URL``, ``PREFECT_API_URL``,
``QUANTFLEET_PUSHGATEWAY``), then checked end to end: its artifacts are objects in the bucket
and ``runs show --store s3://…`` reads the run; its flow run is COMPLETED in Prefect's REST API;
its backtest count, pushed when it ended, is in Prometheus (PromQL) and equals the run's own.
Grafana and the Postgres database are not started (nothing of quantfleet's talks to them).
"""

from __future__ import annotations

import json
import re

import pytest

from tests.deploy.test_ray_jobs import qf
from tests.services import (
    PROMETHEUS,
    PUSHGATEWAY,
    post_json,
    prometheus,
    pushgateway,
    s3_server,
    until,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PROMETHEUS is None or PUSHGATEWAY is None,
                       reason="Debian's prometheus / prometheus-pushgateway binaries are "
                              "absent: `make prometheus` installs them as root"),
]

BUCKET = "quantfleet"
ACCESS_KEY, SECRET_KEY = "AKIAQFSMOKEKEY000001", "qf-smoke-secret-never-logged"

SMOKE = """
name = "smoke"
[data]
source = "sp500"
assets = ["AAPL", "XOM"]
[tournament]
strategies = ["sma_cross", "rsi"]
train = 1500
test = 750
max_combos = 4
[evolution]
enabled = false
[portfolio]
enabled = false
[report]
enabled = false
"""


def test_one_run_through_the_compose_topology(native_cluster, prefect_api, tmp_path):
    c = native_cluster
    cfg = tmp_path / "smoke.toml"
    cfg.write_text(SMOKE)
    aws = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    with s3_server(BUCKET, ACCESS_KEY, SECRET_KEY) as s3, pushgateway(tmp_path) as gw, \
            prometheus(tmp_path, targets={"pushgateway": gw.split("//", 1)[1],
                                          "ray-head": c.metrics[0], "ray-workers": c.metrics[1]},
                       honor_labels=("pushgateway",)) as prom:
        aws["AWS_ENDPOINT_URL"] = s3
        store = f"s3://{BUCKET}/lakehouse"
        env_args = [a for k, v in {**aws, "QUANTFLEET_PUSHGATEWAY": gw,
                                   "QUANTFLEET_METRICS": "1"}.items()
                    for a in ("--env", f"{k}={v}")]
        p = qf("submit", str(cfg), "--address", c.dashboard, "--store", store,
               "--prefect-api", prefect_api, *env_args)
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
        rid = re.search(r"\(run (\S+)\)", p.stdout).group(1)
        assert f"job quantfleet-{rid}: SUCCEEDED" in p.stdout
        assert SECRET_KEY not in p.stdout  # the job's log never echoes the credentials

        # results in S3: the run's manifest and every artifact it lists are objects there
        import boto3

        cli = boto3.client("s3", endpoint_url=s3, region_name="us-east-1",
                           aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        keys = {o["Key"] for page in cli.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix="lakehouse/") for o in page.get("Contents", [])}
        assert f"lakehouse/runs/{rid}/manifest.json" in keys
        show = qf("runs", "show", rid, "--store", store, "--json", env=aws)
        assert show.returncode == 0, show.stderr
        run = json.loads(show.stdout)
        assert run["status"] == "succeeded" and run["store"] == store
        assert run["executor"]["kind"] == "ray"
        arts = [a["key"] for a in run["artifacts"].values()]
        assert arts and {f"lakehouse/{k}" for k in arts} <= keys

        # the flow run in Prefect's API: named after the run, COMPLETED
        flows = post_json(f"{prefect_api}/flow_runs/filter",
                          {"flow_runs": {"name": {"any_": [f"smoke {rid}"]}}})
        assert len(flows) == 1, flows
        assert flows[0]["state_type"] == "COMPLETED"
        assert flows[0]["parameters"]["run_id"] == rid

        # the metrics in Prometheus: pushed when the run ended, scraped from the Pushgateway
        sel = f'{{job="quantfleet",run_id="{rid}",stage="tournament"}}'
        until("the run's pushed backtests in Prometheus",
              lambda: prom.query(f"quantfleet_backtests_total{sel}"))
        backtests = run["metrics"]["tournament"]["backtests"]
        assert prom.value(f"quantfleet_backtests_total{sel}") == backtests > 0
        assert prom.value(f"quantfleet_tasks_failed_total{sel}") == 0
        # and both Ray nodes' own metrics endpoints are scraped, as in the compose stack
        until("both Ray nodes scraped",
              lambda: len(prom.query('up{job=~"ray-head|ray-workers"} == 1')) == 2)
