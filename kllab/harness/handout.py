"""Lecturer handouts: student notebooks without the worked solutions, and a solutions page per notebook.

Used by ``kllab handout P13 P25 --out DIR``, which writes::

    DIR/students/<slug>.ipynb     the notebook, every solution cell replaced by an empty answer cell
    DIR/solutions/<slug>.html     the executed notebook with its solutions shown open
    DIR/solutions/plotly.min.js   loaded once by the solution pages
    DIR/kllab-handout.zip         both folders, to upload to a course page

A worked solution is a code cell tagged ``hide-input`` (the notebook contract) and the written
``<details><summary><b>Solution</b></summary> ... </details>`` block of an exercise's markdown cell.
Both are taken out; the exercises' own text stays. The check cell and the record cell stay unless ``checks=False``: with them a
student can run the notebook's own check of the paper's claim.

The solution pages come from the notebooks that ``kllab run`` executed (its ``build/run`` folder):
nothing runs twice. ``execute=True`` runs the notebooks that have no executed copy there yet.
"""

from __future__ import annotations

import copy
import json
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import nbformat

from . import run as runner
from .nbtools import is_check_cell, strip

__all__ = ["SOLUTION_TAG", "SOLUTION_BLOCK", "ZIP_NAME", "is_solution_cell", "student_notebook", "handout"]

SOLUTION_TAG = "hide-input"
ZIP_NAME = "kllab-handout.zip"
SOLUTION_BLOCK = re.compile(r"\s*<details[^>]*>\s*<summary>\s*(<b>)?\s*Solution\b.*?</details>", re.S)
"""A written solution in a markdown cell: a ``<details>`` block whose summary starts with "Solution"."""
ANSWER = "# Your answer to the exercise above. (The worked solution is in the solutions page.)\n"


def is_solution_cell(cell) -> bool:
    """A worked solution: a code cell tagged ``hide-input``."""
    return cell.get("cell_type") == "code" and SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def _is_record_cell(cell) -> bool:
    return cell.get("cell_type") == "code" and "remove-cell" in cell.get("metadata", {}).get("tags", [])


def student_notebook(nb, *, checks: bool = True):
    """A copy of ``nb`` in committed form without its worked solutions.

    Each solution code cell becomes an empty answer cell, and each written solution block leaves
    its markdown cell (a cell left empty goes). ``checks=False`` also drops the check cell and the
    record cell. Raises ``ValueError`` if the notebook has no solution cell (a handout of it would
    hand out nothing to do).
    """
    out = strip(copy.deepcopy(nb))
    if not any(is_solution_cell(c) for c in out.cells):
        raise ValueError("the notebook has no solution cell (a code cell tagged 'hide-input') to take out")
    cells = []
    for cell in out.cells:
        if is_solution_cell(cell):
            cells.append(nbformat.v4.new_code_cell(ANSWER))
        elif not checks and (is_check_cell(cell) or _is_record_cell(cell)):
            continue
        elif cell.cell_type == "markdown" and SOLUTION_BLOCK.search(cell.source):
            text = SOLUTION_BLOCK.sub("", cell.source).strip()
            if text:
                cell.source = text
                cells.append(cell)
        else:
            cells.append(cell)
    out.cells = cells
    for cell in out.cells:
        cell.pop("id", None)
    return out


def _executed(target: runner.Target, run_dir: Path) -> Path | None:
    """The executed copy of ``target`` in ``run_dir`` if the run there finished it without error."""
    path = run_dir / target.path.name
    try:
        results = json.loads((run_dir / runner.RESULTS_FILE).read_text(encoding="utf-8"))["notebooks"]
    except (OSError, ValueError, KeyError):
        return None
    entry = results.get(target.label)
    if not path.exists() or entry is None or not entry.get("ok"):
        return None
    return path


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ValueError(f"--out {out_dir} exists and is not empty; choose another folder or pass --force "
                         f"(which replaces only the handout's own files there)")


def handout(keys: Sequence[str], out_dir: Path | str, *, checks: bool = True, force: bool = False,
            run_dir: Path | str = "build/run", execute: bool = False,
            echo: Callable[[str], None] = print) -> Path:
    """Write the handout of the notebooks ``keys`` (catalog ids, slugs or paths) and return its zip.

    Parameters
    ----------
    keys : at least one notebook; every one is resolved before anything is written
    out_dir : the handout's folder; refused if it exists and is not empty, unless ``force``
    checks : keep the check cell and the record cell in the student notebooks
    force : write into a non-empty ``out_dir``, replacing the files of the same names
    run_dir : where ``kllab run`` wrote the executed notebooks (its ``--out``)
    execute : run the notebooks that have no successful executed copy in ``run_dir`` first
    echo : where the progress lines go
    """
    if not keys:
        raise ValueError("name at least one notebook, e.g. `kllab handout P13 --out handout`")
    targets = runner.resolve(keys)  # unknown ids and papers without a notebook stop here
    nbs = {t.label: nbformat.read(t.path, as_version=4) for t in targets}
    students = {label: student_notebook(nb, checks=checks) for label, nb in nbs.items()}
    out_dir, run_dir = Path(out_dir), Path(run_dir)
    _check_out_dir(out_dir, force)

    missing = [t for t in targets if _executed(t, run_dir) is None]
    if missing and not execute:
        ids = " ".join(t.label for t in missing)
        raise ValueError(f"no successful run of {ids} in {run_dir}/ for the solution pages: run `kllab run {ids}` "
                         f"first (with --out {run_dir} if elsewhere), or pass --execute")
    if missing:
        results = runner.run([str(t.path) for t in missing], out_dir=run_dir, echo=echo)
        failed = [r.target.label for r in results if not r.ok]
        if failed:
            raise ValueError(f"{', '.join(failed)} failed in the run, so it has no solutions page; "
                             f"see {run_dir}/index.html")

    (out_dir / "students").mkdir(parents=True, exist_ok=True)
    (out_dir / "solutions").mkdir(parents=True, exist_ok=True)
    written = []
    for t in targets:
        student = out_dir / "students" / t.path.name
        nbformat.write(students[t.label], student)
        executed = nbformat.read(_executed(t, run_dir), as_version=4)
        page = out_dir / "solutions" / t.path.with_suffix(".html").name
        runner.write_html(executed, page, solutions=True)
        written += [student, page]
        n = sum(is_solution_cell(c) for c in nbs[t.label].cells)
        echo(f"{t.label}: {student.relative_to(out_dir)} ({n} solution cell{'s' if n != 1 else ''} taken out), "
             f"{page.relative_to(out_dir)}")
    js = out_dir / "solutions" / "plotly.min.js"
    if js.exists():
        written.append(js)
    archive = out_dir / ZIP_NAME
    tmp = archive.with_name(f".{ZIP_NAME}.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in written:
            zf.write(path, path.relative_to(out_dir).as_posix())
    tmp.replace(archive)
    echo(f"\nhandout in {out_dir}/: students/ (give these out), solutions/ (open the .html pages), {ZIP_NAME}")
    return archive
