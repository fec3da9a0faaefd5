"""The committed notebooks: small, outputs only in check cells, no widget state, parameters papermill can read."""

import json
import re

import nbformat
import papermill
import pytest
from helpers import notebook_params

from kllab.harness import catalog
from kllab.harness.nbtools import is_check_cell, parameters, parameters_cell
from kllab.harness.scaffold import PLACEHOLDER

ALL = sorted(catalog.NOTEBOOK_DIR.glob("*.ipynb"))


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_small_stripped_no_widget_state(path):
    assert path.stat().st_size <= 100_000, f"{path.name} is {path.stat().st_size} bytes"
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert "widgets" not in raw["metadata"]
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    for cell in raw["cells"]:
        if cell["cell_type"] != "code":
            continue
        if is_check_cell({"cell_type": "code", "source": "".join(cell["source"])}):
            assert all(o["output_type"] == "stream" for o in cell["outputs"])
        else:
            assert cell["outputs"] == [], f"{path.name}: output kept outside the check cell"
        assert "papermill" not in cell.get("metadata", {})


@notebook_params
def test_contract_shape(entry):
    path = entry.path
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert parameters_cell(nb) is code[0], "the parameters cell must be the first code cell"
    params = parameters(nb)
    for name in params:
        assert name.isupper(), name
    assert {"SEED", "FAST", "INTERACTIVE"} <= set(params)
    assert params["FAST"] is False and params["INTERACTIVE"] is True
    # papermill reads the same names (a comment with '=' would hide one from it)
    assert set(papermill.inspect_notebook(str(path))) == set(params)
    checks = [c for c in code if is_check_cell(c)]
    assert len(checks) == 1
    entry = catalog.find(path.name)
    text = "".join(o.get("text", "") for o in checks[0].outputs)
    assert text.startswith(f"CHECK {entry.id} ok"), text
    assert text.count("\n") == 1, "the check prints exactly one line"
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for heading in ("## The claim", "## Explore", "## Check", "## Caveats", "## Exercises", "## References"):
        assert heading in md, f"{path.name}: missing {heading!r}"
    assert "**What to notice:**" in md


@notebook_params
def test_no_scaffold_left_and_every_exercise_has_a_worked_solution(entry):
    nb = nbformat.read(entry.path, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert PLACEHOLDER not in text, f"{entry.notebook} still holds {PLACEHOLDER} marks from `kllab new`"
    for stub in ("NotImplementedError", "TODO"):
        assert stub not in text, f"{entry.notebook} holds a {stub}"
    cells = nb.cells
    start = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Exercises" in c.source)
    end = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## References" in c.source)
    section = cells[start:end]
    md = "\n".join(c.source for c in section if c.cell_type == "markdown")
    exercises = re.findall(r"^\s*(?:\d+\.|\*\*Exercise \d+)", md, flags=re.M)
    assert 2 <= len(exercises) <= 6, f"{entry.notebook}: {len(exercises)} exercises (two to four, numbered)"
    solutions = md.count("<details")
    assert solutions >= len(exercises), f"{entry.notebook}: {len(exercises)} exercises, {solutions} worked solutions"
    assert "<details open" not in md, "solutions stay closed until the reader opens them"


@notebook_params
def test_solutions_hidden_until_opened_and_machinery_out_of_the_pages(entry):
    """A worked solution's code is hidden in JupyterLab (source_hidden) and in static pages (hide-input); its
    result is a collapsed block. The record cell is tagged remove-cell (out of Voila and static pages)."""
    nb = nbformat.read(entry.path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and not is_check_cell(c)]
    solutions = [c for c in code if "solution(" in c.source]
    assert solutions, f"{entry.notebook}: no solution cell calls kllab.ui.widgets.solution"
    for c in solutions:
        assert c.metadata.get("jupyter", {}).get("source_hidden") is True, f"{entry.notebook}: {c.source[:60]!r}"
        assert "hide-input" in c.metadata.get("tags", []), f"{entry.notebook}: {c.source[:60]!r}"
    records = [c for c in code if "record(" in c.source]
    assert records, f"{entry.notebook}: no record cell"
    for c in records:
        assert "remove-cell" in c.metadata.get("tags", []), f"{entry.notebook}: record cell not tagged remove-cell"
    for c in code:
        if "remove-cell" in c.metadata.get("tags", []):
            assert "solution(" not in c.source and "display(" not in c.source, "a removed cell shows nothing the reader needs"
