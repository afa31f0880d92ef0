"""The run report: one self-contained HTML file of what a run produced (``build``), from a
``RunView`` kept in the store as the run's ``report_view`` artifact (``save_view`` /
``load_view``).

Importing this package is cheap: pandas is imported only when a report is built; figures are
inline SVG drawn by ``report.plots`` (no plotting library, no scripts in the page).
"""

from quantfleet.report.build import SECTIONS, build
from quantfleet.report.view import RunView, load_view, save_view

__all__ = ["SECTIONS", "RunView", "build", "load_view", "save_view"]
