"""Importing quantfleet.report is cheap: plotly (and pandas) only when a report is built."""

from __future__ import annotations

import json
import subprocess
import sys


def test_import_report_does_not_import_plotly():
    code = ("import sys, json, quantfleet.report\n"
            "from quantfleet.report import RunView, build\n"
            "RunView('r')\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    mods = {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}
    assert "plotly" not in mods
    assert "pandas" not in mods
