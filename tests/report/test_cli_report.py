"""'quantfleet report RUN' in a subprocess: finds the run in the store by id, prefix or
'latest', writes its HTML; bad input -> one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.observe.recorded import recorded_run
from tests.observe.spanset import decomposition_case


def qf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quantfleet.cli", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> tuple[str, str]:
    url = str(tmp_path_factory.mktemp("rep") / "lake")
    return url, recorded_run(url, decomposition_case(), 10.0, 2, "processes")


def test_report_json_and_out_and_the_view_is_recorded(lake, tmp_path):
    from quantfleet.store import Store

    url, run_id = lake
    out = tmp_path / "elsewhere" / "r.html"
    p = qf("report", run_id[:14], "--store", url, "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["run_id"] == run_id and doc["report"] == str(out.resolve()) and out.is_file()
    assert 'id="latency"' in out.read_text(encoding="utf-8")
    # the view is now an artifact of the run; a second report reads it back
    assert Store.open(url).get_run(run_id).output("report_view")
    again = qf("report", "latest", "--store", url, "--out", str(tmp_path / "b.html"))
    assert again.returncode == 0, again.stderr
    assert str(tmp_path / "b.html") in again.stdout


def test_default_path_is_under_quantfleet_home(lake, tmp_path):
    import os

    url, run_id = lake
    env = {**os.environ, "QUANTFLEET_HOME": str(tmp_path / "home")}
    p = subprocess.run([sys.executable, "-m", "quantfleet.cli", "report", run_id, "--store",
                        url], capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "home" / "reports" / f"{run_id}.html").is_file()


def test_unknown_run_is_one_line_and_exit_2(lake):
    p = qf("report", "no-such-run", "--store", lake[0])
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no run 'no-such-run' in store")
    assert "Traceback" not in p.stderr


def test_a_view_added_later_is_archived_with_the_run(lake, tmp_path):
    from quantfleet.store import Store

    url, run_id = lake
    assert qf("report", run_id, "--store", url, "--out", str(tmp_path / "x.html")).returncode == 0
    st = Store.open(url)
    m = st.get_run(run_id)
    archived = st.get_json(m.archived)
    assert m.output("report_view") in archived["steps"][0]["outputs"].values()
