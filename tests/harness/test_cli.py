"""The command line, as a user runs it: real subprocesses, real papermill."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook


def kllab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kllab", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_list_shows_every_paper_and_status():
    out = kllab("list")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    for i in range(1, 45):
        assert any(ln.startswith(f"P{i:02d} ") for ln in lines)
    assert any(ln.startswith("P37 ") and "notebook" in ln for ln in lines)
    from kllab.harness import catalog

    assert ("not yet" in out.stdout) == any(not e.notebook for e in catalog.papers())
    assert "papers have a notebook" in out.stdout


def test_run_one_fast_writes_pages_and_table(tmp_path):
    out = kllab("run", "P37", "--fast", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "[1/1] P37" in out.stdout
    assert "CHECK P37 ok" in out.stdout
    assert (tmp_path / "index.html").exists()
    page = (tmp_path / "p37-rapo.html").read_text()
    assert 'src="plotly.min.js"' in page and "Plotly.newPlot" in page  # figures interactive without a kernel
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000


def test_run_with_parameter(tmp_path):
    out = kllab("run", "P37", "--fast", "-p", "BETA=0.5", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "beta=0.5" in out.stdout


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_the_other_parameter_syntax_is_refused_with_the_fix(command, tmp_path):
    grid = ["--grid", "EPSILON=0.1", "--out", str(tmp_path / "s")] if command == "sweep" else []
    out = kllab(command, "P37", *grid, "-p", "BETA", "0.5")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == (f"kllab {command}: -p must be NAME=VALUE in one word; got 'BETA' "
                          f"(write -p BETA=0.5, not -p BETA 0.5)\n")


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_bad_workers_is_one_line_naming_the_option(workers, tmp_path):
    out = kllab("run", "P37", "--workers", workers, "--out", str(tmp_path))
    assert out.returncode == 2 and out.stderr == f"kllab run: --workers must be an integer >= 1; got {workers!r}\n"
    assert not (tmp_path / "p37-rapo.ipynb").exists()


def test_a_leaky_notebook_does_not_affect_the_next_in_the_same_kernel(tmp_path):
    """kllab run on one worker: the first notebook changes process-wide state, the second sees none of it."""
    leaky = _notebook(tmp_path / "leaky.ipynb", "import os, torch, numpy as np\nLEAK = 1\n"
                      "torch.set_default_dtype(torch.float64); os.environ['KLLAB_LEAK'] = '1'; os.chdir('/')\n"
                      "np.seterr(all='raise'); torch.manual_seed(0)\nprint('CHECK leaky ok')")
    probe = _notebook(tmp_path / "probe.ipynb", "import os, torch, numpy as np\n"
                      "from kllab.harness.record import record\n"
                      "record('leaked', 'LEAK' in globals()); record('dtype', str(torch.get_default_dtype()))\n"
                      "record('env', 'KLLAB_LEAK' in os.environ); record('cwd', os.getcwd())\n"
                      "record('numpy', np.geterr()['divide']); record('pid', os.getpid())\nprint('CHECK probe ok')")
    out = kllab("run", str(leaky), str(probe), "--workers", "1", "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    from kllab.harness.record import read

    got = read(tmp_path / "out" / "probe.ipynb")
    assert got["leaked"] is False and got["env"] is False and got["dtype"] == "torch.float32"
    assert got["cwd"] == str(tmp_path) and got["numpy"] == "warn"
    fresh = kllab("run", str(probe), "--fresh-kernels", "--out", str(tmp_path / "fresh"))
    assert fresh.returncode == 0, fresh.stderr
    assert read(tmp_path / "fresh" / "probe.ipynb")["pid"] != got["pid"]


def _notebook(path, source):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = new_code_cell("FAST = False\nINTERACTIVE = True")
    params.metadata["tags"] = ["parameters"]
    check = new_code_cell("# NBVAL_CHECK_OUTPUT\n" + source)
    nb.cells = [params, check]
    nbformat.write(nb, path)
    return path


def test_new_scaffolds_a_notebook_that_cannot_pass(tmp_path, monkeypatch, paper_without_notebook):
    """kllab new in a copy of the catalog and notebooks folder: the skeleton, the catalog field, a failing check."""
    from kllab.harness import catalog, scaffold
    from kllab.harness.run import run

    cat = catalog.CATALOG_PATH  # a copy; the fresh kernel below reads the same copy (KLLAB_CATALOG)
    monkeypatch.setattr(catalog, "NOTEBOOK_DIR", tmp_path)
    try:
        target = catalog.find(paper_without_notebook)
        path = scaffold.new(target.id)
        assert path == tmp_path / f"{target.slug}.ipynb"
        assert catalog.find(target.id).notebook == path.name
        assert cat.read_text().count(f'notebook = "{path.name}"') == 1
        nb = nbformat.read(path, as_version=4)
        md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        for heading in ("## The claim", "## Setup", "## Explore", "## Check", "## Caveats", "## Exercises",
                        "## References", "<details>"):
            assert heading in md
        from kllab.harness.nbtools import parameters

        assert set(parameters(nb)) == {*target.knobs.values(), "SEED", "FAST", "INTERACTIVE"}
        assert target.title in md and target.arxiv in md
        entry = catalog.find(target.id)
        assert set(entry.ranges) == {n for k, n in entry.knobs.items() if k != "direction"}, entry.ranges
        assert entry.directions == (["forward", "reverse"] if "direction" in entry.knobs else [])
        solutions = [c for c in nb.cells if c.cell_type == "code" and "solution(" in c.source]
        assert solutions and all(c.metadata["jupyter"]["source_hidden"] and "hide-input" in c.metadata["tags"]
                                 for c in solutions)
        assert any("remove-cell" in c.metadata.get("tags", []) and "record" in c.source for c in nb.cells)
        results = run([str(path)], fast=True, out_dir=tmp_path / "out", echo=lambda line: None, fresh_kernels=True)
        assert not results[0].ok and "NotImplementedError: SCAFFOLD: the check of" in results[0].error
        # again, or for a paper that has a notebook: one line, nothing overwritten
        before = path.read_bytes()
        with pytest.raises(ValueError, match=f"{target.id} already has a notebook"):
            scaffold.new(target.id)
        assert path.read_bytes() == before
    finally:
        catalog.reload()


def test_new_refuses_unknown_and_existing_papers(tmp_path):
    before = (Path(__file__).resolve().parents[2] / "kllab" / "harness" / "catalog.toml").read_bytes()
    out = kllab("new", "P99")
    assert out.returncode == 2 and out.stderr == "kllab new: paper must be a catalog id (P01..P44); got 'P99'\n"
    out = kllab("new", "P37")
    assert out.returncode == 2 and out.stderr.startswith("kllab new: P37 already has a notebook: p37-rapo.ipynb")
    assert out.stderr.count("\n") == 1
    assert (Path(__file__).resolve().parents[2] / "kllab" / "harness" / "catalog.toml").read_bytes() == before


def test_failure_names_notebook_and_cell_and_others_still_run(tmp_path):
    bad = tmp_path / "broken.ipynb"
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = new_code_cell("FAST = False\nINTERACTIVE = True")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell("x = 1\nraise RuntimeError('boom')")]
    nbformat.write(nb, bad)
    out = kllab("run", str(bad), "P37", "--fast", "--out", str(tmp_path / "out"))
    assert out.returncode == 1
    assert "broken" in out.stderr and "RuntimeError: boom" in out.stderr and 'cell ' in out.stderr
    assert "CHECK P37 ok" in out.stdout  # the other notebook still ran


def test_unknown_parameter_refused_before_running(tmp_path):
    out = kllab("run", "P37", "-p", "NOPE=1", "--out", str(tmp_path))
    assert out.returncode == 2
    assert "parameter 'NOPE' is not in the parameters cell of p37-rapo.ipynb" in out.stderr
    assert not (tmp_path / "p37-rapo.ipynb").exists()


def test_paper_without_notebook(tmp_path, paper_without_notebook):
    paper = paper_without_notebook
    out = kllab("run", paper, "--out", str(tmp_path))
    assert out.returncode == 2 and paper in out.stderr and "has no notebook yet" in out.stderr


def test_strip_keeps_only_check_output(tmp_path):
    src = Path(__file__).resolve().parents[2] / "notebooks" / "p37-rapo.ipynb"
    nb = nbformat.read(src, as_version=4)
    committed = [c.outputs for c in nb.cells if c.cell_type == "code" and c.source.startswith("# NBVAL")]
    assert committed and committed[0], "the committed check cell has its output"
    for c in nb.cells:
        if c.cell_type == "code" and not c.source.startswith("# NBVAL"):
            c.outputs = [nbformat.v4.new_output("stream", name="stdout", text="noise\n")]
    nb.metadata["widgets"] = {"state": {}}
    path = tmp_path / "p37-rapo.ipynb"
    nbformat.write(nb, path)
    assert kllab("strip", str(path)).returncode == 0
    again = nbformat.read(path, as_version=4)
    assert "widgets" not in again.metadata
    assert [c for c in again.cells if c.cell_type == "code" and c.outputs and not c.source.startswith("# NBVAL")] == []
    kept = [c.outputs for c in again.cells if c.cell_type == "code" and c.source.startswith("# NBVAL")]
    assert kept == committed, "the check line is the one output strip keeps"


def test_strip_execute_refreshes_the_check_line(tmp_path):
    src = Path(__file__).resolve().parents[2] / "notebooks" / "p37-rapo.ipynb"
    nb = nbformat.read(src, as_version=4)
    check = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# NBVAL"))
    committed = check.outputs[0]["text"]
    check.outputs = []
    path = tmp_path / "p37-rapo.ipynb"
    nbformat.write(nb, path)
    out = kllab("strip", "--execute", str(path))
    assert out.returncode == 0, out.stderr
    again = nbformat.read(path, as_version=4)
    check = next(c for c in again.cells if c.cell_type == "code" and c.source.startswith("# NBVAL"))
    assert [o["text"] for o in check.outputs] == [committed]
    assert sum(1 for c in again.cells if c.cell_type == "code" and c.outputs) == 1


def test_run_png_and_results_feed_the_gallery(tmp_path):
    import json

    from kllab.ui.gallery import cards_html, last_run

    out = kllab("run", "P37", "--fast", "--png", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    pngs = sorted((tmp_path / "p37-rapo").glob("figure-*.png"))
    assert len(pngs) >= 3 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["notebooks"]["P37"]["ok"] and results["notebooks"]["P37"]["check"].startswith("CHECK P37 ok")
    page = cards_html(run=last_run(tmp_path / "results.json"))
    assert "check ok" in page and "check failed" not in page


def test_dashboard_serves_and_prints_url():
    import socket
    import urllib.request

    from kllab.harness.dashboard import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kllab", "dashboard", "P37", "--no-browser", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert "kllab dashboard: serving p37-rapo.ipynb at" in lines[0]
        url = lines[1].strip()
        assert url == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url, timeout=120) as resp:
            assert resp.status == 200 and "P37" in resp.read().decode()
    finally:
        proc.terminate()
        proc.wait(20)
    # Voila went with it: nothing listens on the port any more.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_dashboard_refuses_paper_without_notebook(paper_without_notebook):
    paper = paper_without_notebook
    out = kllab("dashboard", paper, "--no-browser")
    assert out.returncode == 2 and paper in out.stderr and "has no notebook yet" in out.stderr


def test_dashboard_refuses_preheating_the_whole_gallery():
    out = kllab("dashboard", "--preheat", "--no-browser")
    assert out.returncode == 2 and out.stderr.startswith("kllab dashboard: --preheat needs one notebook")
    assert out.stderr.count("\n") == 1
