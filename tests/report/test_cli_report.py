"""'quantfleet report DIR' in a subprocess: writes report.html, bad input -> one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

from quantfleet.report import RunView
from tests.report.synthetic import realistic_view


def qf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quantfleet.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_report_writes_html_into_the_run_dir(tmp_path):
    d = realistic_view().save(tmp_path / "run")
    p = qf("report", str(d))
    assert p.returncode == 0, p.stderr
    html = d / "report.html"
    assert html.is_file() and str(html) in p.stdout
    assert 'id="speedup"' in html.read_text(encoding="utf-8")


def test_report_json_and_out(tmp_path):
    d = RunView("r-1").save(tmp_path / "run")
    out = tmp_path / "elsewhere" / "r.html"
    p = qf("report", str(d), "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["report"] == str(out.resolve()) and out.is_file()


def test_missing_dir_is_one_line_and_exit_2(tmp_path):
    p = qf("report", str(tmp_path / "no-such-run"))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "no such directory" in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def test_dir_without_view_is_one_line_and_exit_2(tmp_path):
    p = qf("report", str(tmp_path))
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "view.json" in p.stderr
