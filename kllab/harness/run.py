"""Headless runs: execute notebooks with papermill, export HTML, collect the check lines.

Used by ``kllab run``. Each notebook runs in its own fresh kernel with ``INTERACTIVE=False``
(and ``FAST=True`` with ``--fast``); a failing notebook is reported with the cell that failed
and the others still run.
"""

from __future__ import annotations

import ast
import html
import json
import os
import sys
import time
from contextlib import contextmanager
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import catalog
from .nbtools import check_lines, parameters

__all__ = ["Target", "RunResult", "resolve", "parse_value", "run", "run_one", "format_table"]

KERNEL = "python3"


@dataclass(frozen=True)
class Target:
    """A notebook to run: its label (catalog id or file stem) and path."""

    label: str
    path: Path
    title: str = ""


@dataclass
class RunResult:
    target: Target
    ok: bool
    seconds: float
    checks: list[str]
    error: str = ""
    ipynb: Path | None = None
    html: Path | None = None


def parse_value(text: str):
    """A command-line value as a Python literal where it parses (``3``, ``True``, ``[1, 2]``), else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def resolve(keys: Sequence[str] = ()) -> list[Target]:
    """Notebooks named by catalog id, slug or path; all catalog notebooks if ``keys`` is empty."""
    if not keys:
        return [Target(e.id, e.path, e.title) for e in catalog.entries() if e.notebook]
    out = []
    for key in keys:
        p = Path(key)
        if p.suffix == ".ipynb":
            if not p.exists():
                raise ValueError(f"notebook {key!r} does not exist")
            try:
                e = catalog.find(p.name)
                out.append(Target(e.id, p, e.title))
            except ValueError:
                out.append(Target(p.stem, p))
            continue
        e = catalog.find(key)
        if not e.notebook:
            raise ValueError(f"{e.id} ({e.short or e.title}) has no notebook yet; see `kllab list`")
        out.append(Target(e.id, e.path, e.title))
    return out


def _notebook_parameters(path: Path) -> dict:
    return parameters(nbformat.read(path, as_version=4))


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _describe_failure(out_path: Path, err: Exception) -> str:
    """'cell N ("first line of source"): Error: message', from papermill's error and the saved notebook."""
    ename = getattr(err, "ename", type(err).__name__)
    evalue = _first_line(str(getattr(err, "evalue", err)))
    where = ""
    if out_path.exists():
        nb = nbformat.read(out_path, as_version=4)
        for index, cell in enumerate(nb.cells):
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                where = f'cell {index} ("{_first_line(cell.source)[:60]}"): '
                break
    return f"{where}{ename}: {evalue}"


PLOTLY_JSON = "application/vnd.plotly.v1+json"


def _write_html(nb_path: Path, html_path: Path) -> None:
    """An HTML page of an executed notebook whose plotly figures stay interactive without a kernel.

    Each plotly output gets an HTML rendering next to its JSON, and the page loads a local
    ``plotly.min.js`` (written once into the output folder) before anything else in its head.
    """
    import plotly.io as pio
    from nbconvert import HTMLExporter
    from plotly.offline import get_plotlyjs

    nb = nbformat.read(nb_path, as_version=4)
    has_plotly = False
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY_JSON in data:
                has_plotly = True
                data["text/html"] = pio.to_html(data[PLOTLY_JSON], include_plotlyjs=False, full_html=False,
                                                config={"responsive": True})
    body, _ = HTMLExporter().from_notebook_node(nb)
    if has_plotly:
        js = html_path.parent / "plotly.min.js"
        if not js.exists():
            js.write_text(get_plotlyjs(), encoding="utf-8")
        body = body.replace("<head>", '<head>\n<script src="plotly.min.js"></script>', 1)
    html_path.write_text(body, encoding="utf-8")


@contextmanager
def _stderr_to(path: Path):
    """Send this process's file descriptor 2, and so the kernel's stderr, to ``path`` for a while.

    The kernel inherits it at start: its start-up warnings and shutdown messages land in the
    log next to the executed notebook instead of interleaving with the progress lines.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def run_one(target: Target, out_dir: Path, parameters: dict, *, timeout: int = 600) -> RunResult:
    """Execute one notebook; never raises for a notebook error (the result says what failed)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    out_ipynb = out_dir / target.path.name
    out_html = out_ipynb.with_suffix(".html")
    t0 = time.perf_counter()
    error = ""
    try:
        with _stderr_to(out_ipynb.with_suffix(".log")):
            papermill.execute_notebook(
                str(target.path), str(out_ipynb), parameters=parameters, kernel_name=KERNEL,
                progress_bar=False, cwd=str(target.path.parent), execution_timeout=timeout)
    except PapermillExecutionError as err:
        error = _describe_failure(out_ipynb, err)
    except Exception as err:  # kernel died, timeout, bad notebook: report, go on with the others
        error = f"{type(err).__name__}: {_first_line(str(err))}"
    seconds = time.perf_counter() - t0
    checks: list[str] = []
    if out_ipynb.exists():
        checks = check_lines(nbformat.read(out_ipynb, as_version=4))
        try:
            _write_html(out_ipynb, out_html)
        except Exception as err:  # the run's result matters more than its page
            error = error or f"HTML export failed: {type(err).__name__}: {err}"
    if not error and not any(c.startswith("CHECK") and " ok" in c for c in checks):
        error = "the check cell printed no 'CHECK ... ok' line"
    return RunResult(target, not error, seconds, checks, error, out_ipynb if out_ipynb.exists() else None,
                     out_html if out_html.exists() else None)


def format_table(results: Sequence[RunResult]) -> str:
    rows = [("notebook", "status", "seconds", "check")]
    for r in results:
        check = r.checks[0] if r.checks else ""
        rows.append((r.target.label, "ok" if r.ok else "FAILED", f"{r.seconds:.1f}", check if r.ok else r.error))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(row[i].ljust(widths[i]) for i in range(3)) + "  " + row[3] for row in rows]
    lines.insert(1, "-" * min(100, max(len(ln) for ln in lines)))
    return "\n".join(lines)


def _write_index(results: Sequence[RunResult], out_dir: Path, parameters: dict) -> Path:
    rows = []
    for r in results:
        link = f'<a href="{html.escape(r.html.name)}">{html.escape(r.target.label)}</a>' if r.html else \
            html.escape(r.target.label)
        status = "ok" if r.ok else "FAILED"
        detail = html.escape(r.checks[0] if (r.ok and r.checks) else r.error)
        rows.append(f"<tr class='{status.lower()}'><td>{link}</td><td>{html.escape(r.target.title)}</td>"
                    f"<td>{status}</td><td>{r.seconds:.1f}</td><td><code>{detail}</code></td></tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>kllab run</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:4px 10px;text-align:left}}
tr.failed{{background:#fdd}} tr.ok td:nth-child(3){{color:#070}}</style></head><body>
<h1>kllab run</h1><p>Parameters: <code>{html.escape(repr(parameters))}</code></p>
<table><tr><th>notebook</th><th>title</th><th>status</th><th>seconds</th><th>check</th></tr>
{''.join(rows)}</table></body></html>"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


RESULTS_FILE = "results.json"


def _write_results(results: Sequence[RunResult], out_dir: Path, parameters: dict) -> Path:
    """A machine-readable summary of the run, read by the gallery (``kllab.ui.gallery``)."""
    data = {"finished": time.strftime("%Y-%m-%d %H:%M"), "parameters": {k: repr(v) for k, v in parameters.items()},
            "notebooks": {r.target.label: {"ok": r.ok, "check": r.checks[0] if r.checks else "", "error": r.error,
                                           "seconds": round(r.seconds, 1), "file": r.target.path.name}
                          for r in results}}
    path = out_dir / RESULTS_FILE
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def write_pngs(nb_path: Path, folder: Path) -> list[Path]:
    """Each plotly figure of an executed notebook as a PNG (kaleido; needs a Chrome or Chromium).

    Returns the files written, ``folder/figure-01.png`` and so on, in the notebook's order.
    """
    import plotly.io as pio

    figs = [out["data"][PLOTLY_JSON] for cell in nbformat.read(nb_path, as_version=4).cells
            for out in cell.get("outputs", []) if PLOTLY_JSON in out.get("data", {})]
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"figure-{i:02d}.png" for i in range(1, len(figs) + 1)]
    if figs:
        pio.write_images([pio.from_json(json.dumps(f)) for f in figs], paths, width=900, height=500)
    return paths


def _check_png_support() -> None:
    import shutil

    if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome", "chrome")):
        raise ValueError("--png needs Chrome or Chromium for kaleido; none found on PATH "
                         "(on Debian: apt-get install chromium)")


def run(keys: Sequence[str] = (), *, fast: bool = False, parameters: dict | None = None,
        out_dir: Path | str = "build/run", png: bool = False, echo: Callable[[str], None] = print) -> list[RunResult]:
    """Run notebooks headless and return one result per notebook.

    Parameters
    ----------
    keys : catalog ids, slugs or notebook paths (all catalog notebooks when empty)
    fast : pass ``FAST=True``
    parameters : extra parameters; names are checked against each notebook's parameters cell
    out_dir : where the executed notebooks, their HTML pages, ``index.html`` and ``results.json`` go
    png : also write each figure as a PNG under ``out_dir/<notebook>/`` (needs Chrome or Chromium)
    """
    targets = resolve(keys)
    if png:
        _check_png_support()
    params = {"INTERACTIVE": False, **({"FAST": True} if fast else {}), **(parameters or {})}
    for t in targets:  # refuse unknown names before anything runs
        known = _notebook_parameters(t.path)
        unknown = [k for k in params if k not in known]
        if unknown:
            raise ValueError(f"parameter {unknown[0]!r} is not in the parameters cell of {t.path.name}; "
                             f"its parameters are: {', '.join(known)}")
    out_dir = Path(out_dir)
    results = []
    for i, t in enumerate(targets, 1):
        echo(f"[{i}/{len(targets)}] {t.label} {t.path.name} ...")
        r = run_one(t, out_dir, params)
        echo(f"      {'ok' if r.ok else 'FAILED'} in {r.seconds:.1f} s"
             f"{'' if r.ok else ': ' + r.error}")
        if png and r.ipynb is not None:
            pngs = write_pngs(r.ipynb, out_dir / t.path.stem)
            echo(f"      {len(pngs)} PNG figure(s) in {out_dir / t.path.stem}/")
        results.append(r)
    index = _write_index(results, out_dir, params)
    _write_results(results, out_dir, params)
    echo("")
    echo(format_table(results))
    echo(f"\nexecuted notebooks and HTML pages: {out_dir}/  (open {index})")
    return results

