"""The run report: one self-contained HTML file of what a run produced (``build``).

Importing this package is cheap: plotly and pandas are imported only when a report is built.
"""

from quantfleet.report.build import SECTIONS, RunView, build, report_from_dir

__all__ = ["SECTIONS", "RunView", "build", "report_from_dir"]
