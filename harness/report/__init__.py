"""The report: every run of a results store in one self-contained HTML file.

    from harness.report import render_report, render_dir
    render_report(docs, Path("reports/report.html"), title="matrix", meta={"command": "..."})
    render_dir(Path("reports"))                       # re-render from reports/*/results.json

The page opens offline: data embedded as JSON, the chart library (uPlot, vendored under
``vendor/``) and our script inlined, a Content-Security-Policy that forbids any fetch.

Modules: ``fmt`` (total formatting), ``series`` (the throughput timeline, checked and
downsampled), ``view`` (one run, display-ready), ``matrix`` (client × fault cells), ``compare``
(comparison bar charts), ``embed`` (safe JSON and inlined code), ``render`` (Jinja2, files).
See docs/report.md.
"""

from __future__ import annotations

from harness.report.render import collect, find_runs, render_dir, render_dirs, render_html, render_report

__all__ = ["collect", "find_runs", "render_dir", "render_dirs", "render_html", "render_report"]
