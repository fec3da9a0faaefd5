"""Headless runs: execute notebooks on the engine's kept kernels, export HTML, collect the check lines.

Used by ``kllab run``. The notebooks run with ``INTERACTIVE=False`` (and ``FAST=True`` with
``--fast``) on local workers, one kept kernel each (:mod:`kllab.harness.engine`), or each in a
fresh kernel with ``fresh_kernels``; a failing notebook is reported with the cell that failed and
the others still run.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import catalog, engine
from .nbtools import parameters, parse_value
from .ranges import check_parameters

__all__ = ["Target", "RunResult", "resolve", "parse_value", "notebook_parameters", "run", "format_table",
           "write_html", "write_pngs", "RESULTS_FILE"]

RESULTS_FILE = "results.json"


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
    records: dict | None = None
    cell_seconds: float = 0.0


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


def catalog_entry(target: Target) -> catalog.Entry | None:
    """The catalog entry of a target's notebook, or None for a notebook the catalog does not list."""
    try:
        return catalog.find(target.path.name)
    except ValueError:
        return None


def notebook_parameters(path: Path) -> dict:
    """The defaults of a notebook's parameters cell, ``{NAME: value}``."""
    return parameters(nbformat.read(path, as_version=4))


PLOTLY_JSON = "application/vnd.plotly.v1+json"


def write_html(nb, html_path: Path, *, solutions: bool = False) -> None:
    """An HTML page of an executed notebook whose plotly figures stay interactive without a kernel.

    Each plotly output gets an HTML rendering next to its JSON, and the page loads a local
    ``plotly.min.js`` (written once into the output folder) before anything else in its head.
    Cells tagged ``remove-cell`` (the record cell) are left out, and the code of cells tagged
    ``hide-input`` (worked solutions) is not shown: their result stays a collapsed block.
    ``solutions=True`` is a lecturer's page instead: the solutions' code is shown and their
    results are open.
    """
    import plotly.io as pio
    from nbconvert import HTMLExporter
    from plotly.offline import get_plotlyjs

    has_plotly = False
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY_JSON in data:
                has_plotly = True
                data["text/html"] = pio.to_html(data[PLOTLY_JSON], include_plotlyjs=False, full_html=False,
                                                config={"responsive": True})
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = {"remove-cell"}
    config.TagRemovePreprocessor.remove_input_tags = set() if solutions else {"hide-input"}
    body, _ = HTMLExporter(config=config).from_notebook_node(nb)
    if solutions:
        body = re.sub(r"""<details class=(["'])kl-solution\1>""", r"<details class=\1kl-solution\1 open>", body)
        body = re.sub(r"<details>(\s*<summary>\s*(<b>)?\s*Solution)", r"<details open>\1", body)
    if has_plotly:
        js = html_path.parent / "plotly.min.js"
        if not js.exists():
            tmp = js.with_name(f".plotly.min.js.{time.monotonic_ns()}")
            tmp.write_text(get_plotlyjs(), encoding="utf-8")
            tmp.replace(js)
        body = body.replace("<head>", '<head>\n<script src="plotly.min.js"></script>', 1)
    html_path.write_text(body, encoding="utf-8")


def _run_and_export(task: dict) -> dict:
    """One notebook on this worker's kernel, then its executed file and HTML page (in the worker thread)."""
    result = engine.run_point(task)
    out_ipynb = Path(task["out_dir"]) / task["name"]
    result["ipynb"] = result["html"] = None
    if result["notebook"] is not None:
        out_ipynb.write_text(result["notebook"], encoding="utf-8")
        result["ipynb"] = out_ipynb
        try:
            write_html(nbformat.reads(result["notebook"], as_version=4), out_ipynb.with_suffix(".html"))
            result["html"] = out_ipynb.with_suffix(".html")
        except Exception as err:  # the run's result matters more than its page
            if result["status"] == "ok":
                result.update(status="failed", error=f"HTML export failed: {type(err).__name__}: {err}")
    if result["status"] == "ok" and not any(c.startswith("CHECK") and " ok" in c for c in result["checks"]):
        result.update(status="failed", error="the check cell printed no 'CHECK ... ok' line")
    return result


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


def _write_results(results: Sequence[RunResult], out_dir: Path, parameters: dict) -> Path:
    """A machine-readable summary of the runs into ``out_dir``, read by the gallery and ``kllab handout``.

    A run of some notebooks updates their entries and keeps the others' from earlier runs into the
    same folder (their executed files are still there); each entry says when and with which
    parameters its notebook ran.
    """
    path = out_dir / RESULTS_FILE
    finished = time.strftime("%Y-%m-%d %H:%M")
    params = {k: repr(v) for k, v in parameters.items()}
    try:
        earlier = json.loads(path.read_text(encoding="utf-8")).get("notebooks", {})
    except (OSError, ValueError, AttributeError):
        earlier = {}
    notebooks = {label: entry for label, entry in earlier.items() if isinstance(entry, dict)}
    notebooks.update({r.target.label: {"ok": r.ok, "check": r.checks[0] if r.checks else "", "error": r.error,
                                       "seconds": round(r.seconds, 1), "file": r.target.path.name,
                                       "finished": finished, "parameters": params}
                      for r in results})
    data = {"finished": finished, "parameters": params, "notebooks": notebooks}
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
        out_dir: Path | str = "build/run", png: bool = False, workers: int | None = None,
        fresh_kernels: bool = False, timeout: int = 600, echo: Callable[[str], None] = print) -> list[RunResult]:
    """Run notebooks headless and return one result per notebook, in the order given.

    Parameters
    ----------
    keys : catalog ids, slugs or notebook paths (all catalog notebooks when empty)
    fast : pass ``FAST=True``
    parameters : extra parameters; names are checked against each notebook's parameters cell
    out_dir : where the executed notebooks, their HTML pages, ``index.html``, ``results.json`` and
        the kernels' logs (``logs/``) go
    png : also write each figure as a PNG under ``out_dir/<notebook>/`` (needs Chrome or Chromium)
    workers : local workers, each with its own kept kernel (default: one per core)
    fresh_kernels : a new kernel for every notebook (stock papermill behaviour) instead of kept ones
    timeout : seconds allowed per cell
    echo : where the progress lines go
    """
    engine.check_workers(workers)
    targets = resolve(keys)
    if png:
        _check_png_support()
    params = {"INTERACTIVE": False, **({"FAST": True} if fast else {}), **(parameters or {})}
    for t in targets:  # refuse unknown names before anything runs
        known = notebook_parameters(t.path)
        unknown = [k for k in params if k not in known]
        if unknown:
            raise ValueError(f"parameter {unknown[0]!r} is not in the parameters cell of {t.path.name}; "
                             f"its parameters are: {', '.join(known)}")
        entry = catalog_entry(t)
        if entry is not None:  # values outside the catalog's ranges are refused here, not one notebook in
            check_parameters(entry, params, label=f"-p for {t.label}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [engine.task_for(t.path, params, fresh=fresh_kernels, timeout=timeout, log_dir=(out_dir / "logs").resolve(),
                             out_dir=str(out_dir), index=i) for i, t in enumerate(targets)]
    n = min(workers or engine.local_workers(), len(targets))
    echo(f"running {len(targets)} notebook{'s' if len(targets) != 1 else ''} on {n} "
         f"{'fresh-kernel ' if fresh_kernels else ''}worker{'s' if n != 1 else ''} ...")
    results: list[RunResult | None] = [None] * len(targets)
    count = iter(range(1, len(targets) + 1))

    def on_result(task: dict, res: dict) -> None:
        t = targets[task["index"]]
        r = RunResult(t, res["status"] == "ok", res["seconds"], res["checks"], res["error"], res.get("ipynb"),
                      res.get("html"), res["records"], res["cell_seconds"])
        results[task["index"]] = r
        echo(f"[{next(count)}/{len(targets)}] {t.label} {t.path.name} {'ok' if r.ok else 'FAILED'} "
             f"in {r.seconds:.1f} s{'' if r.ok else ': ' + r.error}")
        if png and r.ipynb is not None:
            pngs = write_pngs(r.ipynb, out_dir / t.path.stem)
            echo(f"      {len(pngs)} PNG figure(s) in {out_dir / t.path.stem}/")

    engine.run_tasks(tasks, on_result, workers=n, work=_run_and_export)
    done = [r for r in results if r is not None]
    index = _write_index(done, out_dir, params)
    _write_results(done, out_dir, params)
    echo("")
    echo(format_table(done))
    echo(f"\nexecuted notebooks and HTML pages: {out_dir}/  (open {index})")
    return done
