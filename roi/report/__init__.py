"""The decision report: report.html (one self-contained page, English or Japanese) and report.json,
built from the run store so the end of `roi run` and `roi report RUN_ID` are the same code."""

from roi.report import trend as _trend  # noqa: F401  registers the trend section (issue 7)
from roi.report.build import ReportFiles, build_report, rebuild_report, write_report

__all__ = ["ReportFiles", "build_report", "rebuild_report", "write_report"]
