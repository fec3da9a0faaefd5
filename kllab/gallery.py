"""The landing page: one card per catalog entry, as HTML (used by ``notebooks/index.ipynb``)."""

from __future__ import annotations

import html

from . import catalog

__all__ = ["cards_html"]

_CSS = """<style>
.kl-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px;margin:8px 0}
.kl-card{border:1px solid #ddd;border-radius:8px;padding:10px 12px;background:#fff;font-size:13px;line-height:1.35}
.kl-card.todo{background:#f7f7f7;color:#777}
.kl-card h4{margin:0 0 4px 0;font-size:14px}
.kl-id{font-weight:bold;color:#1f77b4;margin-right:6px}
.kl-knob{display:inline-block;border-radius:10px;padding:0 7px;margin:2px 3px 0 0;background:#eef3fa;font-size:11px}
.kl-status{float:right;font-size:11px}
</style>"""

_KNOB_LABEL = {"direction": "direction", "temperature": "temperature", "width": "width"}


def _card(e: catalog.Entry) -> str:
    knobs = "".join(
        f'<span class="kl-knob" title="{html.escape(e.knob_meaning.get(k, ""))}">'
        f"{_KNOB_LABEL[k]}: {html.escape(v)}</span>" for k, v in e.knobs.items())
    title = html.escape(e.title)
    if e.notebook:
        title = f'<a href="{html.escape(e.notebook)}">{title}</a>'
        status = '<span class="kl-status">notebook</span>'
    else:
        status = '<span class="kl-status">not yet</span>'
    meta = " · ".join(x for x in (str(e.year or ""), html.escape(e.topic),
                                  f'<a href="{e.arxiv_url}">arXiv:{e.arxiv}</a>' if e.arxiv else "") if x)
    return (f'<div class="kl-card{"" if e.notebook else " todo"}">{status}<h4><span class="kl-id">{e.id}</span>'
            f"{title}</h4><div>{meta}</div><div>{knobs}</div></div>")


def cards_html(entries: list[catalog.Entry] | None = None) -> str:
    """HTML for a grid of cards, primers first; papers without a notebook are greyed out."""
    entries = catalog.entries() if entries is None else entries
    return _CSS + '<div class="kl-grid">' + "".join(_card(e) for e in entries) + "</div>"
