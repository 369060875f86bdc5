"""HTML from plain data: one module-level Jinja2 environment, templates shipped in the package,
autoescaping on, so model output and pilot text can never become markup."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from roi.report.charts import Canvas
from roi.report.i18n import text

env = Environment(
    loader=PackageLoader("roi.report", "templates"),
    autoescape=True,  # every template, whatever its extension (.html.j2, .svg.j2)
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def svg(chart: Canvas) -> Markup:
    """A chart drawn by the chart template (autoescaped like the page)."""
    return Markup(env.get_template("charts/chart.svg.j2").render(chart=chart))


@pass_context
def tr(context: Context, key: str, **params: Any) -> str:
    """A message in the page's language (a plain string: the page escapes it)."""
    return text(str(context["lang"]), key, **params)


env.globals["svg"] = svg
env.globals["tr"] = tr


def render_page(context: dict[str, Any]) -> str:
    return env.get_template("report.html.j2").render(**context)
