"""The pages' HTML from Jinja2 templates (``web/templates/``), autoescaped: a value is never markup.

Every page extends ``base.html``; the login pages add their card (``login_base.html``), the calibration
pages their header and messages (``page.html``).
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2
from markupsafe import Markup

BR = Markup("<br>")  # joins the lines of a cell; the lines themselves are escaped


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("b2cal_assets.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a missing value is an error, never an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    """``template`` rendered with ``context``; strings in it are escaped."""
    return environment().get_template(template).render(br=BR, **context)
