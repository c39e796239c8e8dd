"""HTML building blocks of the report: one page, inline CSS, escaped text, atomic write.

Every user-provided string goes through :func:`html.escape`; the page loads nothing from
anywhere (no scripts, no web fonts, images as ``data:`` URIs).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

CSS = """
:root { --ink:#1f2328; --muted:#59616b; --line:#e3e6ea; --soft:#f5f7f9; --accent:#3b6fd1;
  --good:#2e9d4b; --bad:#d1453b; }
* { box-sizing: border-box; }
body { margin:0; color:var(--ink); background:#fff; line-height:1.5;
  font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1120px; margin:0 auto; padding:0 20px 64px; }
header { background:linear-gradient(180deg,#f3f6fb,#fff); border-bottom:1px solid var(--line); }
header .inner { max-width:1120px; margin:0 auto; padding:28px 20px 20px; }
h1 { font-size:26px; margin:0 0 4px; letter-spacing:-0.01em; }
h2 { font-size:19px; margin:44px 0 6px; padding-top:8px; border-top:1px solid var(--line); }
main > section:first-child h2 { border-top:none; margin-top:28px; }
h3 { font-size:15px; margin:20px 0 6px; }
.sub { color:var(--muted); font-size:13.5px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(210px,1fr)); gap:14px;
  margin:18px 0 6px; }
.card { border:1px solid var(--line); border-radius:10px; padding:12px 16px; background:#fff; }
.card .name { color:var(--muted); font-size:12.5px; text-transform:uppercase;
  letter-spacing:.05em; }
.card .value { font-size:30px; font-weight:650; font-variant-numeric:tabular-nums; }
.card .from { color:var(--muted); font-size:13px; font-variant-numeric:tabular-nums; }
.up { color:var(--good); } .down { color:var(--bad); }
nav { margin:14px 0 0; font-size:13px; display:flex; flex-wrap:wrap; gap:6px 14px; }
nav a { color:var(--accent); text-decoration:none; } nav a:hover { text-decoration:underline; }
p.caption { color:var(--muted); font-size:13.5px; max-width:820px; margin:4px 0 12px; }
p.note { background:var(--soft); border-left:3px solid var(--line); padding:8px 12px;
  color:var(--muted); font-size:13.5px; }
figure { margin:10px 0 18px; }
figure img { max-width:100%; height:auto; display:block; }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; font-size:13.5px; margin:8px 0 16px; }
th, td { padding:5px 12px; border-bottom:1px solid var(--line); text-align:left;
  vertical-align:top; }
th { color:var(--muted); font-weight:600; background:var(--soft); }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
table.kv td:first-child { color:var(--muted); white-space:nowrap; }
table.kv td { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12.5px;
  word-break:break-word; }
.chip { display:inline-block; padding:1px 7px; margin:1px 2px; border-radius:9px; font-size:12px;
  border:1px solid; font-variant-numeric:tabular-nums; white-space:nowrap; }
.chip.hit { color:var(--good); border-color:var(--good); background:#eef8f1; }
.chip.miss { color:var(--bad); border-color:var(--bad); background:#fcf0ef; }
footer { color:var(--muted); font-size:12.5px; margin-top:48px; }
@media (max-width:640px) { body { font-size:14px; } h1 { font-size:21px; }
  .card .value { font-size:24px; } th, td { padding:4px 7px; } }
"""


def text(value: Any) -> str:
    """``str(value)`` escaped for HTML text and attributes (quotes included)."""
    return escape(str(value), quote=True)


def number(value: float, digits: int = 3) -> str:
    """A metric value for display: fixed digits, ``–`` for NaN."""
    return "–" if value != value else f"{value:.{digits}f}"


def figure(uri: str, alt: str) -> str:
    """An ``<img>`` of a ``data:`` URI inside a ``<figure>``."""
    if not uri.startswith("data:"):
        raise ValueError(f"uri must be a data: URI; got {uri[:30]!r}")
    return f'<figure><img src="{uri}" alt="{text(alt)}"></figure>'


def table(header: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """A table from already-rendered cell HTML (``<td>`` added unless a cell starts with ``<t``)."""
    head = "".join(f"<th>{text(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(c if c.startswith("<t") else f"<td>{c}</td>" for c in row) + "</tr>"
        for row in rows
    )
    attr = f' class="{cls}"' if cls else ""
    return f'<div class="scroll"><table{attr}><tr>{head}</tr>{body}</table></div>'


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested mappings as ``(dotted.key, value)`` pairs, in insertion order.

    Example:
        >>> flatten({"loss": {"name": "triplet", "margin": 0.2}, "epochs": 3})
        [('loss.name', 'triplet'), ('loss.margin', 0.2), ('epochs', 3)]
    """
    out: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.extend(flatten(value, f"{name}."))
        else:
            out.append((name, value))
    return out


def key_values(mapping: Mapping[str, Any]) -> str:
    """A two-column escaped table of a (nested) mapping; lists and others shown as JSON."""
    rows = [(text(k), text(_show(v))) for k, v in flatten(mapping)]
    if not rows:
        return '<p class="note">Nothing recorded.</p>'
    return table(("key", "value"), rows, cls="kv")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):  # circular containers
        return repr(value)


def section(anchor: str, title: str, caption: str, body: str) -> str:
    """A ``<section>`` with an id, a heading and a caption explaining how to read it."""
    return (
        f'<section id="{text(anchor)}"><h2>{text(title)}</h2>'
        f'<p class="caption">{caption}</p>{body}</section>'
    )


def page(title: str, header: str, sections: list[tuple[str, str, str]], footer: str) -> str:
    """The whole document. ``sections``: ``(anchor, title, html)``; a nav links them."""
    nav = "".join(f'<a href="#{text(a)}">{text(t)}</a>' for a, t, _ in sections)
    body = "".join(html for _, _, html in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{text(title)}</title><style>{CSS}</style></head><body>"
        f'<header><div class="inner">{header}<nav>{nav}</nav></div></header>'
        f"<main>{body}<footer>{footer}</footer></main></body></html>\n"
    )
