"""The decision report: report.html (one self-contained page, English or Japanese) and report.json,
rendered from a run's evaluation (roi/evaluation.py), so the end of `roi run` and `roi report RUN_ID`
are the same code."""

from roi.report import trend as _trend  # noqa: F401  registers the trend section
from roi.report.build import ReportFiles, build_report, check_language, write_report

__all__ = ["ReportFiles", "build_report", "check_language", "write_report"]
