"""``kllab new P01``: a new paper notebook in the contract's skeleton, from its catalog entry.

The scaffold has every section of the notebook contract (``NOTEBOOKS.md`` of the project) in
order, the parameters cell with the catalog's knob names plus ``SEED``, ``FAST`` and
``INTERACTIVE``, validation in the setup cell, and a check cell that raises until it is written.
Every spot left to the author holds the marker :data:`PLACEHOLDER`; a test fails while a
committed notebook still holds it, so a scaffold can never pass as done.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from . import catalog
from .nbtools import KERNELSPEC, strip

__all__ = ["PLACEHOLDER", "new", "notebook_for"]

PLACEHOLDER = "SCAFFOLD"
"""The marker of every unwritten part of a scaffold (``# SCAFFOLD: ...`` or ``*SCAFFOLD: ...*``)."""

_DEFAULTS = {"direction": '"forward"', "temperature": "1.0", "width": "8"}
"""Each knob parameter's default in a scaffold."""

_RANGES = {  # the catalog range a scaffold starts from, until the author chooses one
    "temperature": '{ min = 0.1, max = 10.0, scale = "log", step = 1.25 }',
    "width": '{ min = 1, max = 64, scale = "log", step = 2 }',
}
_DIRECTIONS = '["forward", "reverse"]'
"""The directions a scaffold offers until the author lists the paper's own."""


def _md(text: str):
    return new_markdown_cell(text.strip("\n"))


def _code(text: str, tags: tuple[str, ...] = ()):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def _solution(text: str):
    """A worked solution's code cell: its source hidden in JupyterLab and in static pages until opened."""
    cell = _code(text, tags=("hide-input",))
    cell.metadata["jupyter"] = {"source_hidden": True}
    return cell


def _parameters(entry: catalog.Entry) -> list[tuple[str, str, str, str, str]]:
    """(name, default, comment, validation, widget) for each knob parameter, in knob order, each name once."""
    out, seen = [], set()
    for knob in catalog.KNOBS:
        name = entry.knobs.get(knob)
        if not name or name in seen:
            continue
        seen.add(name)
        knobs = [k for k in catalog.KNOBS if entry.knobs.get(k) == name]
        meaning = "; ".join(f"the {k} knob: {entry.knob_meaning.get(k, '')}" for k in knobs)
        meaning = meaning.replace("=", "is")  # papermill skips a parameter line whose comment holds '='
        label = name.lower() if knobs == [name.lower()] else f"{name.lower()} ({' and '.join(knobs)})"
        out.append((name, _DEFAULTS[knob], f"{PLACEHOLDER}: {meaning}; its range is in the catalog",
                    f'RANGES.check("{name}", {name})', f'RANGES.widget("{name}", {name}, "{label}")'))
    return out


def notebook_for(entry: catalog.Entry):
    """The scaffold notebook of ``entry`` (an ``nbformat`` node, in committed form)."""
    params = _parameters(entry)
    width = max([len(f"{n} = {d}") for n, d, *_ in params] + [len("INTERACTIVE = True")]) + 2
    lines = [f"{n} = {d}".ljust(width) + f"# {c}" for n, d, c, *_ in params]
    lines += ["SEED = 0".ljust(width) + "# seed of every random draw",
              "FAST = False".ljust(width) + "# small sizes for CI (seconds, not tens of seconds)",
              "INTERACTIVE = True".ljust(width) + "# build the knob panel (False under papermill / kllab run)"]
    checks = [f"{n} = {c}" for n, _, _, c, _ in params]
    checks += ['SEED = check_int("SEED", SEED)', 'FAST = check_bool("FAST", FAST)',
               'INTERACTIVE = check_bool("INTERACTIVE", INTERACTIVE)']
    names = [n for n, *_ in params]
    args = ", ".join(n.lower() for n in names)
    absent = [k for k in catalog.KNOBS if k not in entry.knobs]
    absent_line = (f"\n\n*{PLACEHOLDER}: say in one sentence why this paper has no {' and no '.join(absent)} knob.*"
                   if absent else "")
    knob_widgets = "\n".join(f'        "{n.lower()}": {w},' for n, _, _, _, w in params)
    arxiv = f"[arXiv:{entry.arxiv}]({entry.arxiv_url})" if entry.arxiv else ""
    cells = [
        _md(f"""
# {entry.id} · {entry.short or entry.title}: *{PLACEHOLDER}: the idea in one line*

*{PLACEHOLDER}: authors.* *{entry.title}* ({entry.year}). {arxiv}
"""),
        _md(f"""
## The claim

*{PLACEHOLDER}: one paragraph, in our own words: what the paper says about the divergence, and what this toy
shows (and, where the toy cannot show the paper's claim, what it checks instead).*
"""),
        _code("\n".join(lines), tags=("parameters",)),
        _md("## Setup"),
        _code(f"""
import math

import numpy as np
import torch

from kllab.harness.ranges import knob_ranges
from kllab.maths.validation import check_bool, check_int, check_real
from kllab.ui import plots

RANGES = knob_ranges("{entry.id}")   # each knob parameter's accepted range, kept once in the catalog
{chr(10).join(checks)}
# {PLACEHOLDER}: more validation (every parameter of the cell above, bounded on both sides), the sizes FAST
# selects, the toy. Choose each catalog range so that every value in it runs the notebook to its end.
"""),
        _md(f"""
## 1. *{PLACEHOLDER}: the first idea*

*{PLACEHOLDER}: idea, then the formula in LaTeX, then code that calls kllab, then a figure.*
The first time a formula appears, a 3-5 line from-scratch version, checked equal to the library call.
"""),
        _code(f"""
def first_figure({args}):
    # {PLACEHOLDER}: compute with kllab (a pure function of the knobs) and return a figure from kllab.ui.plots.
    return plots.lines([0, 1], {{"{PLACEHOLDER}": [0, 1]}}, title="{PLACEHOLDER}: the first figure")


first_figure({", ".join(names)}).show()
"""),
        _md(f"**What to notice:** *{PLACEHOLDER}: one line telling the reader what to see.*"),
        _md(f"""
## Explore

*{PLACEHOLDER}: which knob does what, over which range (every value of every slider must redraw).*{absent_line}
"""),
        _code(f"""
from kllab.ui.widgets import KnobPanel


def explore({args}):
    return [first_figure({args})]


if INTERACTIVE:  # each control offers its catalog range: the check must hold, or say what it tests, over all of it
    panel = KnobPanel(explore, {{
{knob_widgets}
    }}, title="{entry.id}: {PLACEHOLDER}")
    display(panel)
"""),
        _md(f"""
## Check

*{PLACEHOLDER}: what is asserted, against which theory or independent computation, and over which part of the
knobs' ranges it holds.*
"""),
        _code(f"""
# NBVAL_CHECK_OUTPUT
# {PLACEHOLDER}: assert the paper's claim with an explicit tolerance against theory or an independent computation,
# then print one short deterministic line.
raise NotImplementedError("{PLACEHOLDER}: the check of {entry.id} is not written yet")
print(f"CHECK {entry.id} ok: ...")
"""),
        _code(f"""
# The checked quantities, kept in the executed notebook for `kllab sweep` (kllab.harness.record.read gets them back).
from kllab.harness.record import record

# {PLACEHOLDER}: record("name", value) for each quantity the check asserts (at least three).
""", tags=("remove-cell",)),
        _md(f"""
## Caveats

* *{PLACEHOLDER}: what the toy leaves out, honestly.*
"""),
        _md(f"""
## Exercises

1. *{PLACEHOLDER}: "change X and predict Y".*

<details><summary><b>Solution</b></summary>

*{PLACEHOLDER}: the worked solution. A solution that computes goes in the code cell below, which the tests run.*

</details>
"""),
        _solution(f"""
# Solution to exercise 1 (runs in the tests, so it cannot rot).
from kllab.ui.widgets import solution

# {PLACEHOLDER}: compute, assert what the written solution states, then show the numbers collapsed:
solution("Exercise 1", "{PLACEHOLDER}")
"""),
        _md(f"""
## References

* *{PLACEHOLDER}: authors.* *{entry.title}.* {entry.year}. arXiv:{entry.arxiv}.
"""),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return strip(nb)


def _set_catalog_notebook(entry: catalog.Entry, name: str) -> None:
    """Set ``notebook = "<name>"`` in the entry's block of ``catalog.toml``, and give each knob parameter a
    starting range (and the direction knob its two directions) where the entry has none; nothing else changes."""
    path = catalog.CATALOG_PATH
    text = path.read_text(encoding="utf-8")
    block = re.search(rf'^\[\[(?:paper|primer)\]\]\nid = "{re.escape(entry.id)}"\n(?:(?!\[\[).*\n)*', text, flags=re.M)
    if block is None or not re.search(r'^notebook = ""$', block.group(0), flags=re.M):
        raise ValueError(f"catalog.toml has no 'notebook = \"\"' line for {entry.id}; edit it by hand")
    added = []
    if "direction" in entry.knobs and not entry.directions:
        added.append(f"directions = {_DIRECTIONS}")
    ranges = {name: _RANGES[knob] for knob, name in entry.knobs.items() if knob in _RANGES}
    ranges = {name: spec for name, spec in ranges.items() if name not in entry.ranges}
    if ranges and not entry.ranges:
        added.append("ranges = { " + ", ".join(f"{n} = {spec}" for n, spec in ranges.items()) + " }")
    line = "\n".join(added + [f'notebook = "{name}"'])
    new_block = re.sub(r'^notebook = ""$', lambda _: line, block.group(0), count=1, flags=re.M)
    path.write_text(text[:block.start()] + new_block + text[block.end():], encoding="utf-8")
    catalog.reload()


def new(key: str) -> Path:
    """Write ``notebooks/<slug>.ipynb`` for the catalog entry ``key`` and set its ``notebook`` field.

    Raises ``ValueError`` (and writes nothing) for an unknown id or an entry that already has a
    notebook, or if the file exists.
    """
    try:
        entry = catalog.find(key)
    except ValueError:
        raise ValueError(f"paper must be a catalog id (P01..P44); got {key!r}") from None
    if entry.notebook:
        raise ValueError(f"{entry.id} already has a notebook: {entry.notebook} (nothing was written)")
    name = f"{entry.slug}.ipynb"
    path = catalog.NOTEBOOK_DIR / name
    if path.exists():
        raise ValueError(f"{path} exists already (nothing was written); set notebook = \"{name}\" in the catalog")
    nb = notebook_for(entry)
    _set_catalog_notebook(entry, name)
    nbformat.write(nb, path)
    return path
