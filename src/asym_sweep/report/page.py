"""``index.html``: one self-contained page (plotly.js inlined once) with a summary first,
then one section per (dataset, arch) holding its two thesis-shaped tables and figures."""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1500px;padding:0 1em;color:#222}
table.results{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
table.results caption{text-align:left;font-weight:600;padding:.3em 0}
table.results th,table.results td{border:1px solid #ccc;padding:.25em .5em;text-align:right}
table.results th:first-child,table.results td:first-child{text-align:left}
table.results th{background:#f3f3f3}
td.missing{color:#b00;font-style:italic}
nav{columns:5;font-size:.9em} nav a{display:block}
.note{color:#555;font-size:.9em} .problems{color:#b00}
section{border-top:2px solid #ddd;margin-top:1.5em}
"""


@dataclass
class Section:
    anchor: str
    title: str
    parts: list[str] = field(default_factory=list)

    def add_html(self, fragment: str) -> None:
        self.parts.append(fragment)

    def add_text(self, text: str, cls: str = "note") -> None:
        self.parts.append(f'<p class="{cls}">{html.escape(text)}</p>')

    def add_links(self, label: str, links: list[tuple[str, str]]) -> None:
        items = " · ".join(f'<a href="{html.escape(href)}">{html.escape(name)}</a>' for name, href in links)
        self.parts.append(f'<p class="note">{html.escape(label)}: {items}</p>')

    def add_figure(self, fig: go.Figure, div_id: str) -> None:
        self.parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id))


def render_page(title: str, intro: list[str], sections: list[Section]) -> str:
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{"".join(s.parts)}</section>' for s in sections
    )
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    intro_html = "".join(f"<p>{html.escape(p)}</p>" for p in intro)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
        f'<h1>{html.escape(title)}</h1><p class="note">Generated {stamp} by python -m asym_sweep.report.</p>'
        f"{intro_html}<nav>{nav}</nav>{body}</body></html>\n"
    )
