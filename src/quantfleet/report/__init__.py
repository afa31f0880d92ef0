"""The run report: one self-contained HTML file of what a run produced (``build``), from a
``RunView`` kept in the store as the run's ``report_view`` artifact (``save_view`` /
``load_view``).

Importing this package is cheap: plotly and pandas are imported only when a report is built.
"""

from quantfleet.report.build import SECTIONS, build
from quantfleet.report.view import RunView, load_view, save_view

__all__ = ["SECTIONS", "RunView", "build", "load_view", "save_view"]
