"""`kllab site`'s pieces and refusals; the built site itself is read in Chromium by tests/notebooks/test_site.py."""

import subprocess
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from kllab.harness import catalog, site
from kllab.harness.run import PLOTLY_JSON


def kllab(*args):
    return subprocess.run([sys.executable, "-m", "kllab", *args], capture_output=True, text=True, timeout=600)


def _executed():
    fig = {"data": [{"type": "scatter", "x": [0, 1], "y": [1, 2]}], "layout": {}}
    injected = new_code_cell("FAST = True", metadata={"tags": ["injected-parameters"]})
    plot = new_code_cell("fig", outputs=[new_output("display_data", data={PLOTLY_JSON: fig, "text/plain": "Figure"})])
    return new_notebook(cells=[new_markdown_cell("# P37 · title"), injected, plot])


def test_a_failed_notebook_keeps_its_page_marked_failed_with_the_error():
    entry = catalog.find("P37")
    result = {"ok": False, "check": "", "error": "cell 7: ZeroDivisionError: division by zero", "seconds": 1.0}
    page = site.prepare_notebook(_executed(), entry, result)
    head = page.cells[1].source
    assert "kl-badge failed" in head and "ZeroDivisionError: division by zero" in head
    assert "voila/render/notebooks/p37-rapo.ipynb" in head and "lab/tree/notebooks/p37-rapo.ipynb" in head
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in page.cells)
    data = page.cells[2].outputs[0]["data"]
    assert PLOTLY_JSON not in data and "Plotly.newPlot" in data["text/html"]  # drawn by the site's one plotly.js
    assert page.cells[-1].source.startswith("## Related papers (rlhf)")
    index = site._index({"P37": result}, [entry])
    assert "✘ failed" in index and "division by zero" in index


def test_an_ok_notebook_shows_its_check_line_as_a_badge():
    result = {"ok": True, "check": "CHECK P37 ok: beta=0.1", "error": "", "seconds": 1.0,
              "parameters": {"FAST": "True", "INTERACTIVE": "False"}}
    head = site.prepare_notebook(_executed(), catalog.find("P37"), result).cells[1].source
    assert "kl-badge ok" in head and "CHECK P37 ok: beta=0.1" in head and "FAST=True" in head


def test_conventions_page_is_the_readmes_section():
    page = site._conventions()
    assert page.startswith("# Conventions\n") and "## Translation table" in page and "**Math order.**" in page


def test_site_before_any_run_says_what_to_run(tmp_path):
    out = kllab("site", "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "site"))
    assert out.returncode == 2 and "run `kllab run` first" in out.stderr and "--execute" in out.stderr
    assert not (tmp_path / "site").exists()


def test_site_refuses_a_folder_it_did_not_build(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text('{"notebooks": {"P37": {"ok": true}}}')
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    out = kllab("site", "--run-dir", str(tmp_path / "run"), "--out", str(mine))
    assert out.returncode == 2 and "is not a site" in out.stderr
    assert (mine / "notes.txt").read_text() == "keep me"
