"""Headless sweeps: one notebook over a grid of parameter values, in parallel, into one table.

``kllab sweep P37 --grid BETA=0.05,0.1,0.5 --grid DIRECTION=forward,reverse -p FAST=True --out DIR``
runs one papermill execution per grid point (``INTERACTIVE=False``) on local workers or on a
Dask cluster, and writes ``DIR/results.csv``: one row per point with its parameters, status,
error, seconds, and one column per value the notebook recorded with :func:`kllab.harness.record.record`.
The executed notebooks go to ``DIR/notebooks/``. The same from Python or a notebook::

    from kllab.harness.sweep import sweep
    table = sweep("P37", {"BETA": [0.05, 0.1, 0.5], "DIRECTION": ["forward", "reverse"]},
                  {"FAST": True}, out="build/sweep-p37")
    table.figure("pi_correct").show()

Rows are written as points finish (the file is replaced atomically each time), so an interrupted
sweep keeps what it finished, and the same call again only runs the points not yet ``ok``.

Each local worker is a thread that drives its own Jupyter kernel; the kernel is kept from point
to point and reset between them (:mod:`kllab.harness.engine` says exactly what is reset), unless
``fresh_kernels``. A point that fails is recorded and the others go on.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .. import engine
from ..run import Target, resolve
from .figure import _points, figure
from .grid import check_grid, parse_assignment, parse_grid
from .table import META, RESULTS, Table, _cell, _key, _label, load, write_csv

__all__ = ["sweep", "load", "figure", "parse_grid", "parse_assignment", "Table", "RESULTS"]


def _notebook_file(point: Mapping) -> str:
    label = "_".join(f"{k}={_cell(v)}" for k, v in point.items())
    safe = re.sub(r"[^A-Za-z0-9=._+-]", "-", label)[:120]
    if safe != label:
        safe += "-" + hashlib.sha1(_key(point).encode()).hexdigest()[:8]
    return f"{safe}.ipynb"


def _open_folder(out: Path, target: Target, grid: dict, fixed: dict, force: bool) -> list[dict]:
    """Check that ``out`` holds nothing or the same sweep, write its ``sweep.json``; return the rows it has."""
    meta = {"notebook": target.label, "path": str(target.path), "grid": {k: [repr(v) for v in vs] for k, vs in grid.items()},
            "parameters": {k: repr(v) for k, v in fixed.items()}}
    rows: list[dict] = []
    if (out / META).exists() and (out / RESULTS).exists():
        old = json.loads((out / META).read_text(encoding="utf-8"))
        same = (Path(old["path"]).name == target.path.name and set(old["grid"]) == set(grid)
                and old["parameters"] == meta["parameters"])
        if same:
            rows = load(out).rows
        elif force:  # another sweep, replaced: its executed notebooks go with its table
            shutil.rmtree(out / "notebooks", ignore_errors=True)
        else:
            fixed_text = " ".join(f"-p {k}={v}" for k, v in old["parameters"].items()) or "no -p"
            raise ValueError(f"out {str(out)!r} holds another sweep ({Path(old['path']).name}, grid "
                             f"{', '.join(old['grid'])}, {fixed_text}); give another --out, or --force to replace it")
    elif out.exists() and any(out.iterdir()) and not force and not (out / META).exists():
        raise ValueError(f"out {str(out)!r} is a folder with other files; give a new or empty folder, or a sweep's")
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    (out / META).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return rows


def sweep(notebook: str | Path, grid: Mapping[str, Sequence], parameters: Mapping | None = None, *,
          out: str | Path, workers: int | None = None, dask=None, force: bool = False,
          fresh_kernels: bool = False, timeout: int = 600, plot: Sequence[str] = (),
          echo: Callable[[str], None] = print) -> Table:
    """Run ``notebook`` at every point of ``grid`` (the product of its values) and return the table.

    Parameters
    ----------
    notebook : catalog id (``"P37"``), slug, or path of an ``.ipynb``
    grid : ``{NAME: [values]}``; the first name is the figure's x axis, the second its lines,
        the third its facets. Every name must be in the notebook's parameters cell.
    parameters : fixed parameters for every point (e.g. ``{"FAST": True}``); ``INTERACTIVE`` is
        always False.
    out : folder for ``results.csv``, ``sweep.json``, ``notebooks/`` and the figures. If it
        holds the same sweep (same notebook, grid names and fixed parameters), the points
        already ``ok`` there are not run again (failed ones are), unless ``force``.
    workers : local workers, each driving its own kernel (default: one per available core)
    dask : a ``dask.distributed`` scheduler address (``"tcp://host:8786"``) or ``Client``;
        the points then run on that cluster's workers, which need kllab installed.
    fresh_kernels : a new kernel for every point instead of one kept kernel per worker
    timeout : seconds allowed per cell
    plot : recorded quantities to draw, each to ``out/<name>.html``
    echo : where the progress lines go (``print`` by default)

    Returns
    -------
    Table : one row per point of ``grid``, in grid order, whether run now or found done in
        ``out`` (``results.csv`` also keeps rows of earlier runs outside this grid).

    Raises ``ValueError`` before anything runs for an unknown notebook or parameter name, an
    empty grid, or an ``out`` folder that holds another sweep. A ``KeyboardInterrupt`` stops the
    workers and leaves the finished rows in ``results.csv``.
    """
    target = resolve([str(notebook)])[0]
    grid, fixed = check_grid(target, grid, parameters or {})
    if dask is not None and workers is not None:
        raise ValueError(f"give workers (local) or dask (a cluster), not both; got workers={workers!r}")
    if dask is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ValueError("dask needs dask.distributed installed: pip install 'dask[distributed]'") from None
    engine.check_workers(workers)
    for metric in plot:
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"plot must name recorded quantities; got {metric!r}")
    out = Path(out)
    rows_by_key = {}
    names = list(grid)
    for row in _open_folder(out, target, grid, fixed, force):
        rows_by_key[_key({k: row[k] for k in names})] = row
    points = [dict(zip(names, values)) for values in itertools.product(*grid.values())]
    done = {k for k, r in rows_by_key.items() if r["status"] == "ok"} if not force else set()
    todo = [p for p in points if _key(p) not in done]
    order = {_key(p): i for i, p in enumerate(points)}

    everything = Table([], names, target.label, out / RESULTS, fixed)  # results.csv: this grid first, then older rows
    table = Table([], names, target.label, out / RESULTS, fixed)       # returned: this grid's rows

    def refresh() -> None:
        everything.rows = sorted(rows_by_key.values(),
                                 key=lambda r: order.get(_key({k: r[k] for k in names}), len(order)))
        table.rows = [r for r in everything.rows if _key({k: r[k] for k in names}) in order]
        write_csv(out / RESULTS, everything)

    refresh()
    n_workers = min(workers or engine.local_workers(), max(1, len(todo)))
    where = f"the Dask cluster at {dask}" if isinstance(dask, str) else "a Dask cluster" if dask is not None \
        else f"{n_workers} local worker{'s' if n_workers > 1 else ''}"
    shape = " x ".join(f"{len(v)} {k}" for k, v in grid.items())
    echo(f"sweep {target.label} ({target.path.name}): {_points(len(points))} ({shape}); "
         + (f"{len(points) - len(todo)} already done in {out}, " if len(todo) < len(points) else "")
         + (f"{len(todo)} to run on {where}" if todo else "nothing to run"))

    tasks = [engine.task_for(target.path, {**fixed, **p}, fresh=fresh_kernels, timeout=timeout,
                             log_dir=(out / "logs").resolve(), out_name=f"notebooks/{_notebook_file(p)}", point=p)
             for p in todo]
    count = itertools.count(1)
    t0 = time.perf_counter()

    def on_result(task: dict, result: dict) -> None:
        point = task["point"]
        if result["notebook"] is not None:
            (out / task["out_name"]).write_text(result["notebook"], encoding="utf-8")
        row = {**point, "status": result["status"], "error": result["error"], "seconds": result["seconds"],
               **result["records"], "notebook": task["out_name"] if result["notebook"] is not None else ""}
        rows_by_key[_key(point)] = row
        refresh()
        detail = "" if result["status"] == "ok" else f": {result['error']}"
        echo(f"[{next(count)}/{len(todo)}] {_label(point)} {result['status']} {result['seconds']:.1f} s{detail}")

    try:
        engine.run_tasks(tasks, on_result, workers=n_workers, dask=dask)
    except KeyboardInterrupt:
        finished = sum(1 for r in table.rows if r["status"] == "ok")
        echo(f"interrupted: {finished} of {_points(len(points))} ok in {out / RESULTS}; "
             f"run the same sweep again to resume")
        raise
    echo(f"{len(points) - len(table.failed)} of {_points(len(points))} ok in {time.perf_counter() - t0:.1f} s; "
         f"table: {out / RESULTS}")
    for metric in plot:
        path = out / f"{metric}.html"
        figure(table, metric).write_html(path, include_plotlyjs="directory")
        echo(f"figure: {path}")
    return table


