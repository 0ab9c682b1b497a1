"""The one Jinja loader: every template (the Dockerfile, the batch scripts, the SIF script) is
package data in ``niriss_pipe/templates``, found the same from a checkout, an editable install
or a wheel.
"""

from __future__ import annotations

import functools
import shlex
from pathlib import Path

import jinja2

from niriss_pipe.core.grammar import one_line

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"  # for tools and tests


@functools.cache
def environment(*, trim: bool, html: bool = False) -> jinja2.Environment:
    """Strict (an undefined name is an error, never an empty string), the trailing newline
    kept; ``trim`` drops the newline after a block tag and the indentation before it (the
    Dockerfile's layout); ``html`` escapes every value for HTML (the batch report), else
    nothing is escaped. Renderers add their filters to it."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("niriss_pipe", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=trim,
        lstrip_blocks=trim,
        keep_trailing_newline=True,
        autoescape=html,
    )
    env.filters["comment"] = one_line
    env.filters["shquote"] = shlex.quote
    return env
