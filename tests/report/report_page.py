"""Parse a rendered report back into something assertable (stdlib only)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

JSON_BLOCK = re.compile(r'<script type="application/json" id="rc-data">(.*?)</script>', re.DOTALL)


class Page(HTMLParser):
    """Collects ids, hrefs, matrix cells and <script> elements of a rendered report."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.cells: list[dict[str, str]] = []
        self.script_tags: list[dict[str, str | None]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(a["id"] or "")
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"] or "")
        if tag == "td" and "cell" in (a.get("class") or "").split():
            self.cells.append({k: v or "" for k, v in a.items()})
        if tag == "script":
            self.script_tags.append(a)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def embedded(html: str) -> dict[str, Any]:
    """The report's embedded data block, parsed."""
    m = JSON_BLOCK.search(html)
    assert m, "no embedded JSON block"
    return json.loads(m.group(1))
