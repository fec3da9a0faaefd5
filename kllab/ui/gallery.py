"""The landing page: one card per catalog entry, as HTML (used by ``notebooks/index.ipynb``)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from ..harness import catalog

__all__ = ["cards_html", "last_run", "RUN_RESULTS"]

RUN_RESULTS = catalog.NOTEBOOK_DIR.parent / "build" / "run" / "results.json"
"""Where ``kllab run`` (run from the repository, with its default ``--out``) leaves its summary."""

_CSS = """<style>
.kl-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px;margin:8px 0}
.kl-card{border:1px solid #ddd;border-radius:8px;padding:10px 12px;background:#fff;font-size:13px;line-height:1.35}
.kl-card.todo{background:#f7f7f7;color:#777}
.kl-card h4{margin:0 0 4px 0;font-size:14px}
.kl-id{font-weight:bold;color:#1f77b4;margin-right:6px}
.kl-knob{display:inline-block;border-radius:10px;padding:0 7px;margin:2px 3px 0 0;background:#eef3fa;font-size:11px}
.kl-status{float:right;font-size:11px}
.kl-ok{color:#1a7f37}.kl-fail{color:#b00}
</style>"""

_KNOB_LABEL = {"direction": "direction", "temperature": "temperature", "width": "width"}


def last_run(path: Path = RUN_RESULTS) -> dict:
    """The per-notebook results of the last ``kllab run`` (``{}`` if there was none)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _knob_tip(e: catalog.Entry, knob: str, name: str, ranges) -> str:
    """A knob's tooltip: its meaning and, for a notebook, its accepted range."""
    tip = e.knob_meaning.get(knob, "")
    if name in ranges:
        tip = f"{tip} ({name} {ranges[name].describe()})" if tip else f"{name} {ranges[name].describe()}"
    return tip


def _card(e: catalog.Entry, run: dict) -> str:
    from ..harness.ranges import Ranges

    ranges = Ranges(e)
    knobs = "".join(
        f'<span class="kl-knob" title="{html.escape(_knob_tip(e, k, v, ranges))}">'
        f"{_KNOB_LABEL[k]}: {html.escape(v)}</span>" for k, v in e.knobs.items())
    title = html.escape(e.title)
    if e.notebook:
        title = f'<a href="{html.escape(e.notebook)}" target="_self">{title}</a>'
        res = run.get("notebooks", {}).get(e.id)
        if res is None:
            status = '<span class="kl-status">notebook</span>'
        elif res.get("ok"):
            status = (f'<span class="kl-status kl-ok" title="{html.escape(res.get("check", ""))}">'
                      f'check ok ({html.escape(res.get("finished", run.get("finished", "")))})</span>')
        else:
            status = (f'<span class="kl-status kl-fail" title="{html.escape(res.get("error", ""))}">'
                      f'check failed ({html.escape(res.get("finished", run.get("finished", "")))})</span>')
    else:
        status = '<span class="kl-status">not yet</span>'
    meta = " · ".join(x for x in (str(e.year or ""), html.escape(e.topic),
                                  f'<a href="{e.arxiv_url}" target="_blank">arXiv:{e.arxiv}</a>' if e.arxiv else "")
                      if x)
    return (f'<div class="kl-card{"" if e.notebook else " todo"}" data-id="{e.id}">{status}<h4>'
            f'<span class="kl-id">{e.id}</span>{title}</h4><div>{meta}</div><div>{knobs}</div></div>')


def cards_html(entries: list[catalog.Entry] | None = None, run: dict | None = None) -> str:
    """HTML for a grid of cards, primers first; papers without a notebook are greyed out.

    Each card shows the paper's title (a link to its notebook, which opens as a dashboard
    under Voila), year, topic, arXiv link, the knobs it sweeps and, if ``kllab run`` has been
    run from the repository, the status of its check.
    """
    entries = catalog.entries() if entries is None else entries
    run = last_run() if run is None else run
    return _CSS + '<div class="kl-grid">' + "".join(_card(e, run) for e in entries) + "</div>"
