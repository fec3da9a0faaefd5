"""`kllab handout`, as a lecturer runs it: real `kllab run`, real papermill on the handed-out notebook."""

import ast
import json
import subprocess
import sys
import zipfile

import nbformat
import papermill
import pytest

from kllab.harness import catalog
from kllab.harness.handout import ANSWER, SOLUTION_BLOCK, ZIP_NAME, is_solution_cell, student_notebook
from kllab.harness.nbtools import is_check_cell
from kllab.harness.run import RunResult, Target, _write_results

NOTEBOOKS = [e for e in catalog.entries() if e.notebook]


def kllab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kllab", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def _stored(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _loaded(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


@pytest.mark.parametrize("entry", NOTEBOOKS, ids=[e.id for e in NOTEBOOKS])
def test_student_notebook_keeps_what_runs_without_the_solutions(entry):
    nb = nbformat.read(entry.path, as_version=4)
    solutions = [c for c in nb.cells if is_solution_cell(c)]
    student = student_notebook(nb)
    assert not any(is_solution_cell(c) for c in student.cells)
    assert sum(c.source == ANSWER for c in student.cells) == len(solutions)
    markdown = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
    assert "<details" not in markdown and "</summary>" not in markdown  # no written solution is left
    for cell in nb.cells:  # the exercises' own text stays
        if cell.cell_type == "markdown":
            assert SOLUTION_BLOCK.sub("", cell.source).strip() in markdown
    assert any(is_check_cell(c) for c in student.cells)
    assert not any(is_check_cell(c) for c in student_notebook(nb, checks=False).cells)
    # no cell that stays reads a name that only a solution cell defines
    kept = [c.source for c in student.cells if c.cell_type == "code" and c.source != ANSWER]
    defined_by_kept = set().union(*(_stored(s) for s in kept))
    only_in_solutions = set().union(*(_stored(c.source) for c in solutions)) - defined_by_kept
    for source in kept:
        assert not (_loaded(source) & only_in_solutions), (entry.id, _loaded(source) & only_in_solutions)


def test_a_notebook_without_solutions_is_refused():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(ValueError, match="no solution cell"):
        student_notebook(nb)


def test_results_of_a_second_run_keep_the_first(tmp_path):
    def result(label):
        return RunResult(Target(label, tmp_path / f"{label}.ipynb"), True, 1.0, [f"CHECK {label} ok"])

    _write_results([result("P01")], tmp_path, {"FAST": True})
    _write_results([result("P02")], tmp_path, {})
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data["notebooks"]) == {"P01", "P02"}
    assert data["notebooks"]["P01"]["parameters"] == {"FAST": "True"} and data["notebooks"]["P02"]["parameters"] == {}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    done = kllab("run", "P37", "--fast", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_handout_writes_students_solutions_and_zip_and_the_student_notebook_runs(run_dir, tmp_path):
    out = tmp_path / "handout"
    done = kllab("handout", "P37", "--out", str(out), "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr
    source = nbformat.read(catalog.find("P37").path, as_version=4)
    solution_code = [c.source for c in source.cells if is_solution_cell(c)]
    student = nbformat.read(out / "students" / "p37-rapo.ipynb", as_version=4)
    assert solution_code and not set(solution_code) & {c.source for c in student.cells}
    page = (out / "solutions" / "p37-rapo.html").read_text()
    assert 'class="kl-solution" open' in page and "<details open><summary><b>Solution" in page and 'src="plotly.min.js"' in page
    assert (out / "solutions" / "plotly.min.js").exists()
    with zipfile.ZipFile(out / ZIP_NAME) as zf:
        assert {"students/p37-rapo.ipynb", "solutions/p37-rapo.html", "solutions/plotly.min.js"} <= set(zf.namelist())
    # the handed-out notebook still runs to its check, under papermill, in a fresh kernel
    ran = tmp_path / "ran.ipynb"
    papermill.execute_notebook(str(out / "students" / "p37-rapo.ipynb"), str(ran), kernel_name="python3",
                               parameters={"FAST": True, "INTERACTIVE": False}, progress_bar=False, cwd=str(tmp_path))
    executed = nbformat.read(ran, as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if is_check_cell(c) for o in c.outputs)
    assert "CHECK P37 ok" in printed

    # an output folder that is not empty is refused, and nothing in it changes; --force writes
    before = sorted(p.name for p in out.rglob("*"))
    again = kllab("handout", "P37", "--out", str(out), "--run-dir", str(run_dir))
    assert again.returncode == 2 and "not empty" in again.stderr and "--force" in again.stderr
    assert sorted(p.name for p in out.rglob("*")) == before
    forced = kllab("handout", "P37", "--out", str(out), "--run-dir", str(run_dir), "--force", "--no-checks")
    assert forced.returncode == 0, forced.stderr
    student = nbformat.read(out / "students" / "p37-rapo.ipynb", as_version=4)
    assert not any(is_check_cell(c) for c in student.cells)


@pytest.mark.parametrize("args, message", [
    (["P99"], "got 'P99'"),
    (["notebooks/nope.ipynb"], "does not exist"),
    (["P37"], "kllab run P37"),  # no run in --run-dir yet: says what to run first
])
def test_bad_handouts_write_nothing(tmp_path, args, message):
    out = tmp_path / "handout"
    done = kllab("handout", *args, "--out", str(out), "--run-dir", str(tmp_path / "empty-run"))
    assert done.returncode == 2
    assert done.stderr.startswith("kllab handout: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_paper_without_notebook_is_refused(tmp_path, paper_without_notebook):
    done = kllab("handout", paper_without_notebook, "--out", str(tmp_path / "handout"))
    assert done.returncode == 2 and "has no notebook yet" in done.stderr and paper_without_notebook in done.stderr
    assert not (tmp_path / "handout").exists()
