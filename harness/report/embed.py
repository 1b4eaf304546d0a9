"""Putting code and data inside one HTML file without letting data become code.

* Data goes in ``<script type="application/json">``. JSON is not safe there as is: a string
  holding ``</script>`` would end the element and whatever follows would be parsed as HTML. So
  ``<``, ``>`` and ``&`` are written as ``\\u003c``, ``\\u003e``, ``\\u0026`` (still valid JSON, parsed
  back to the same strings), and U+2028/U+2029 likewise for old JS parsers.
* Code (the vendored chart library and our own script) is inlined verbatim, after checking it
  cannot close its own element, and its SHA-256 goes into the page's Content-Security-Policy:
  only those exact scripts may run, nothing may be fetched. Even a template bug that let a
  ``<script>`` through from the data would then be refused by the browser.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from functools import cache
from importlib import resources
from typing import Any

from markupsafe import Markup

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_RE = re.compile("[<>&\u2028\u2029]")
_CLOSING = re.compile(r"</(script|style)", re.IGNORECASE)

#: the vendored chart library (see docs/report.md for its name, version and licence)
VENDOR_JS = "vendor/uPlot.iife.min.js"
VENDOR_CSS = "vendor/uPlot.min.css"
OWN_JS = "templates/report.js"
OWN_CSS = "templates/report.css"


def json_for_script(data: Any) -> Markup:
    """``data`` as JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False)
    return Markup(_JSON_RE.sub(lambda m: _JSON_ESCAPES[m.group()], text))


def sanitise_numbers(x: Any) -> Any:
    """Replace NaN/Infinity (which JSON cannot hold) with None, recursively."""
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    if isinstance(x, dict):
        return {str(k): sanitise_numbers(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [sanitise_numbers(v) for v in x]
    return x


@cache
def asset(name: str) -> str:
    """A packaged file's text, refused if it could close the element it is inlined in."""
    text = resources.files("harness.report").joinpath(name).read_text(encoding="utf-8")
    if _CLOSING.search(text):
        raise ValueError(f"{name} contains a closing </script> or </style> and cannot be inlined")
    return text


def csp_hash(code: str) -> str:
    """The CSP source expression allowing exactly this inline script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(scripts: list[str]) -> str:
    """No network at all; only the given inline scripts; inline styles (the chart library sets them)."""
    return ("default-src 'none'; script-src " + " ".join(csp_hash(s) for s in scripts)
            + "; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'")
