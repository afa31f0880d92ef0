"""deploy/compose.yaml against the Compose Specification, plus the rules the stack relies on.

``schemas/compose-spec.json`` is the Compose Specification JSON schema (compose-spec's
``schema/compose-spec.json``), vendored from the npm package ``dclint@3.1.0``
(``schemas/compose.schema.json``; sha256 below), since only package registries are reachable.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
SCHEMA_SHA256 = "46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496"
QF_METRICS = ["quantfleet_tasks_started_total", "quantfleet_tasks_finished_total",
              "quantfleet_tasks_failed_total", "quantfleet_task_duration_seconds",
              "quantfleet_backtests_total", "quantfleet_tasks_in_flight",
              "quantfleet_store_bytes_read_total", "quantfleet_store_bytes_written_total"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_vendored_schema_is_the_compose_spec():
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    schema = json.loads(SCHEMA.read_text())
    assert schema["title"] == "Compose Specification"
    jsonschema.Draft7Validator.check_schema(schema)


def test_compose_file_validates_against_the_spec(compose):
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_catches_a_broken_file(compose):
    schema = json.loads(SCHEMA.read_text())
    bad = json.loads(json.dumps(compose))
    bad["services"]["ray-head"]["healthcheck"]["intervall"] = "5s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_every_service_has_a_healthcheck(compose):
    for name, svc in compose["services"].items():
        hc = svc.get("healthcheck")
        assert hc and hc.get("test") and not hc.get("disable"), name


def test_the_expected_services_exist(compose):
    assert {"ray-head", "ray-worker", "minio", "minio-init", "postgres", "prefect-server",
            "prometheus", "grafana", "pushgateway"} <= set(compose["services"])


def test_head_and_workers_share_one_image_built_from_the_dockerfile(compose):
    head, worker = compose["services"]["ray-head"], compose["services"]["ray-worker"]
    assert head["image"] == worker["image"]
    assert head["build"] == worker["build"]
    ctx = (DEPLOY / head["build"]["context"]).resolve()
    dockerfile = ctx / head["build"].get("dockerfile", "Dockerfile")
    assert dockerfile.is_file(), dockerfile
    assert ctx == ROOT and (ctx / "pyproject.toml").is_file()
    text = dockerfile.read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert 'pip install ".[ray,state,pipeline,portfolio,data]"' in text
    extras = set(__import__("tomllib").loads((ROOT / "pyproject.toml").read_text())
                 ["project"]["optional-dependencies"])
    assert {"ray", "state", "pipeline", "portfolio", "data"} <= extras
    # the build context leaves out virtualenvs and caches
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_workers_scale_and_find_the_head(compose):
    head, worker = compose["services"]["ray-head"], compose["services"]["ray-worker"]
    assert isinstance(worker["deploy"]["replicas"], int)
    assert "ports" not in worker and "container_name" not in worker  # --scale needs both
    cmd = " ".join(head["command"])
    assert "--port=6379" in cmd and "--dashboard-port=8265" in cmd
    assert "--ray-client-server-port=10001" in cmd and "--metrics-export-port=8080" in cmd
    published = {str(p).split(":")[0] for p in head["ports"]}
    assert {"8265", "10001", "9464"} <= published
    assert "--address=ray-head:6379" in " ".join(worker["command"])
    assert worker["depends_on"]["ray-head"]["condition"] == "service_healthy"


def test_environment_for_store_ray_and_prefect(compose):
    for name in ("ray-head", "ray-worker"):
        env = compose["services"][name]["environment"]
        assert env["QUANTFLEET_STORE"] == "s3://quantfleet/lakehouse"
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert env["RAY_ADDRESS"] == "ray-head:6379"
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"


def test_bucket_is_created_at_start(compose):
    init = compose["services"]["minio-init"]
    script = " ".join(init["entrypoint"])
    assert "mc mb --ignore-existing qf/quantfleet" in script
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert (compose["services"]["ray-head"]["depends_on"]["minio-init"]["condition"]
            == "service_completed_successfully")


def test_prefect_runs_on_postgres(compose):
    p = compose["services"]["prefect-server"]
    assert p["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith(
        "postgresql+asyncpg://")
    assert "@postgres:5432/" in p["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert p["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_mounted_files_exist(compose):
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (DEPLOY / src).exists(), f"{name}: {src}"


def test_prometheus_scrapes_ray_and_quantfleet():
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    targets = {t for j in jobs.values() for sc in j.get("static_configs", [])
               for t in sc["targets"]}
    assert "ray-head:9464" in targets and "ray-head:8080" in targets
    dns = jobs["ray-workers"]["dns_sd_configs"][0]
    assert dns["names"] == ["ray-worker"] and dns["port"] == 8080
    # the runs' pushed counters keep their own job and run_id labels
    push = jobs["pushgateway"]
    assert push["honor_labels"] is True
    assert push["static_configs"][0]["targets"] == ["pushgateway:9091"]


def test_drivers_push_to_the_pushgateway(compose):
    for name in ("ray-head", "ray-worker"):
        env = compose["services"][name]["environment"]
        assert env["QUANTFLEET_PUSHGATEWAY"] == "http://pushgateway:9091"
    gw = compose["services"]["pushgateway"]
    assert any(str(p).split(":")[-1] == "9091" for p in gw["ports"])
    assert compose["services"]["prometheus"]["depends_on"]["pushgateway"]["condition"] == \
        "service_healthy"


def test_grafana_is_provisioned_with_the_quantfleet_dashboard():
    g = DEPLOY / "grafana"
    ds = yaml.safe_load((g / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    prov = yaml.safe_load((g / "provisioning" / "dashboards" / "quantfleet.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dash = json.loads((g / "dashboards" / "quantfleet.json").read_text())
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for metric in QF_METRICS:
        assert metric in exprs, metric
    # every quantfleet metric a panel asks for is one a run exports (no stale names)
    from quantfleet.observe.metrics import RunMetrics

    exported = {m.name for m in RunMetrics().registry.collect()}
    used = {re.sub(r"_(bucket|sum|count|total)$", "", n)
            for n in re.findall(r"quantfleet_\w+", exprs)}
    assert used <= exported, used - exported
    assert "by (le, stage)" in exprs  # duration quantiles per stage
    assert {p["datasource"]["uid"] for p in dash["panels"]} == {uid}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
