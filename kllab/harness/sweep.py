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

import csv
import hashlib
import html
import itertools
import json
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import engine as execution, run as runner

__all__ = ["sweep", "load", "figure", "parse_grid", "parse_assignment", "Table", "RESULTS"]

RESULTS = "results.csv"
META = "sweep.json"
KERNEL = runner.KERNEL
FIXED_COLUMNS = ("status", "error", "seconds")


# --------------------------------------------------------------------------------------------
# The command line's grid and parameters


def _split_values(text: str) -> list[str]:
    """Split on the commas that are outside brackets and quotes: ``"1,[2,3]"`` -> ``["1", "[2,3]"]``."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_assignment(text: str, option: str = "-p") -> tuple[str, object]:
    """``"NAME=VALUE"`` as ``(NAME, value)``, the value a Python literal where it parses, else the string.

    >>> parse_assignment("FAST=True")
    ('FAST', True)
    """
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier() or not value.strip():
        raise ValueError(f"{option} must be NAME=VALUE; got {text!r}")
    return name, runner.parse_value(value.strip())


def parse_grid(specs: Iterable[str]) -> dict[str, list]:
    """``--grid`` options as ``{NAME: [values]}``; each spec is ``NAME=V1,V2,...``.

    Values are Python literals where they parse, strings otherwise; commas inside brackets or
    quotes do not split (``SIZES=[1,2],[3,4]``).

    >>> parse_grid(["BETA=0.1,0.5", "DIRECTION=forward,reverse"])
    {'BETA': [0.1, 0.5], 'DIRECTION': ['forward', 'reverse']}
    """
    grid: dict[str, list] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"--grid must be NAME=V1,V2,...; got {spec!r}")
        parts = _split_values(values)
        if any(not p for p in parts):
            raise ValueError(f"--grid {name} has an empty value (two commas in a row, or none after '='); got {spec!r}")
        if name in grid:
            raise ValueError(f"--grid names {name} twice; give all its values in one --grid {name}=V1,V2,...")
        grid[name] = [runner.parse_value(p) for p in parts]
    return grid


def _check(target: runner.Target, grid: Mapping, fixed: Mapping) -> tuple[dict, dict]:
    """Validate the grid and the fixed parameters against the notebook's parameters cell."""
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError("grid must name at least one parameter and its values, e.g. --grid BETA=0.1,0.5; got none")
    known = runner._notebook_parameters(target.path)
    checked = {}
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ValueError(f"grid values of {name} must be a list; got {values!r}")
        values = list(values)
        if not values:
            raise ValueError(f"grid {name} has no values; give at least one, e.g. --grid {name}=V1,V2")
        reprs = [repr(v) for v in values]
        for r in reprs:
            if reprs.count(r) > 1:
                raise ValueError(f"grid {name} repeats the value {r}")
        checked[name] = values
    fixed = dict(fixed or {})
    for name in fixed:
        if name in checked:
            raise ValueError(f"{name} is both in the grid and fixed with -p; give it once")
    for name in [*checked, *fixed]:
        if name not in known:
            raise ValueError(f"parameter {name!r} is not in the parameters cell of {target.path.name}; "
                             f"its parameters are: {', '.join(known)}")
    if "INTERACTIVE" in checked or fixed.get("INTERACTIVE", False) is not False:
        given = checked.get("INTERACTIVE", fixed.get("INTERACTIVE"))
        raise ValueError(f"INTERACTIVE is always False in a sweep (no widgets headless); got {given!r}")
    if "INTERACTIVE" in known:
        fixed["INTERACTIVE"] = False
    return checked, fixed


# --------------------------------------------------------------------------------------------
# The table


def _key(point: Mapping) -> str:
    """A point's identity: its parameters with their reprs, in grid order."""
    return ", ".join(f"{k}={v!r}" for k, v in point.items())


def _label(point: Mapping) -> str:
    return " ".join(f"{k}={v!r}" for k, v in point.items())


def _cell(value) -> str:
    """A value as CSV text that reads back to the same value with :func:`_uncell`."""
    if value is None:
        return ""
    if isinstance(value, str):
        back = runner.parse_value(value)
        return value if value and isinstance(back, str) and back == value and value not in _NONFINITE else repr(value)
    return repr(value)


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _uncell(text: str):
    if text == "":
        return None
    if text in _NONFINITE:
        return _NONFINITE[text]
    return runner.parse_value(text)


def _format(value, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


@dataclass(repr=False)
class Table:
    """The results of a sweep: one row per grid point, as dicts.

    Columns: the grid parameters (in grid order), ``status`` (``"ok"`` or ``"failed"``),
    ``error``, ``seconds``, one column per recorded quantity, and ``notebook`` (the executed
    notebook, relative to the sweep's folder). A quantity a row did not record is ``None``.

    >>> t = Table([{"BETA": 0.1, "status": "ok", "error": "", "seconds": 1.0, "kl": 0.5, "notebook": ""}], ["BETA"])
    >>> t.column("kl"), t.metrics
    ([0.5], ['kl'])
    """

    rows: list[dict]
    grid: list[str]
    notebook: str = ""
    path: Path | None = None
    fixed: dict = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        """The recorded quantities, in the order first seen."""
        seen: dict[str, None] = {}
        for row in self.rows:
            for k in row:
                if k not in self.grid and k not in FIXED_COLUMNS and k != "notebook":
                    seen.setdefault(k)
        return list(seen)

    @property
    def columns(self) -> list[str]:
        return [*self.grid, *FIXED_COLUMNS, *self.metrics, "notebook"]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] != "ok"]

    def column(self, name: str) -> list:
        if name not in self.columns:
            raise ValueError(f"column must be one of {', '.join(self.columns)}; got {name!r}")
        return [row.get(name) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]

    def to_pandas(self):
        """The table as a pandas DataFrame (needs pandas, which kllab does not require)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)

    def figure(self, metric: str, **kwargs):
        """:func:`figure` of this table."""
        return figure(self, metric, **kwargs)

    def format(self, columns: Sequence[str] | None = None, digits: int = 4, width: int | None = None) -> str:
        """An aligned text table (errors left out; see :attr:`failed`).

        With ``width``, the last columns that do not fit are left out and counted in a note.
        """
        columns = list(columns or [c for c in self.columns if c not in ("error", "notebook")])
        def text(row: dict, c: str) -> str:
            if c in self.grid:
                return _cell(row.get(c))
            return f"{row[c]:.1f}" if c == "seconds" else _format(row.get(c), digits)

        cells = [columns] + [[text(r, c) for c in columns] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
        keep = len(columns)
        while width and keep > 1 and sum(widths[:keep]) + 2 * (keep - 1) > width:
            keep -= 1
        lines = ["  ".join(v.ljust(w) for v, w in zip(row[:keep], widths)).rstrip() for row in cells]
        note = [f"(and {len(columns) - keep} more column(s): {', '.join(columns[keep:])})"] if keep < len(columns) else []
        return "\n".join([lines[0], "-" * max(len(ln) for ln in lines), *lines[1:], *note])

    def __str__(self) -> str:
        return self.format()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        columns = [c for c in self.columns if c != "notebook"]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            f"<tr{'' if r['status'] == 'ok' else ' style=background:#fdd'}>"
            + "".join(f"<td>{html.escape(_cell(r.get(c)) if c in self.grid else _format(r.get(c)))}</td>"
                      for c in columns) + "</tr>"
            for r in self.rows)
        return f"<table><tr>{head}</tr>{body}</table>"


def _write_csv(path: Path, table: Table) -> None:
    """Replace ``path`` atomically: an interrupt leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(table.columns)
        for row in table.rows:
            writer.writerow([f"{row['seconds']:.2f}" if c == "seconds" else
                             row.get(c, "") if c in ("status", "error", "notebook") else _cell(row.get(c))
                             for c in table.columns])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(out: Path | str) -> Table:
    """The table of the sweep in folder ``out`` (its ``results.csv`` and ``sweep.json``)."""
    out = Path(out)
    meta_path, csv_path = out / META, out / RESULTS
    if not csv_path.exists() or not meta_path.exists():
        raise ValueError(f"out must be a sweep folder with {RESULTS} and {META}; got {str(out)!r}")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    rows = []
    with open(csv_path, newline="", encoding="utf-8") as f:
        for raw in csv.DictReader(f):
            row = {}
            for k, v in raw.items():
                if k in ("status", "error", "notebook"):
                    row[k] = v
                elif k == "seconds":
                    row[k] = float(v)
                else:
                    row[k] = _uncell(v)
            rows.append(row)
    fixed = {k: runner.parse_value(v) for k, v in meta["parameters"].items()}
    return Table(rows, list(meta["grid"]), meta["notebook"], csv_path, fixed)


# --------------------------------------------------------------------------------------------
# Running the points: local threads or a Dask cluster


def _run_local(tasks: list[dict], workers: int, on_result: Callable[[dict, dict], None]) -> None:
    """Local workers: threads of this process, each driving its own kernel (a process of its own).

    Threads, not processes: the work is in the kernels; threads start at once, need no
    ``if __name__ == "__main__"`` guard in a calling script, and were faster when measured.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    threads: set[int] = set()
    stop = threading.Event()

    def run(task: dict) -> dict:
        if stop.is_set():
            return execution.failure(KeyboardInterrupt("interrupted"))
        return execution.run_point(task)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kllab-sweep",
                              initializer=lambda: threads.add(threading.get_ident()))
    futures = {pool.submit(run, t): t for t in tasks}
    try:
        for fut in as_completed(futures):
            on_result(futures[fut], fut.result())
    except BaseException:  # Ctrl-C: no new points, and the running ones end within a second
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        execution.kill_all(threads)
        raise
    finally:
        pool.shutdown(wait=True)
        execution.shutdown_all(threads)  # the threads have stopped: now their kernels can be closed


def _run_dask(tasks: list[dict], address, on_result: Callable[[dict, dict], None]) -> None:
    import uuid

    from distributed import Client, as_completed

    own = not isinstance(address, Client)
    client = Client(address, set_as_default=False) if own else address
    run = uuid.uuid4().hex[:8]
    futures = {client.submit(execution.run_point, t, key=f"kllab-sweep-{run}-{i}", pure=False): t
               for i, t in enumerate(tasks)}
    try:
        for fut in as_completed(list(futures), loop=client.loop):
            try:
                result = fut.result()
            except Exception as err:  # the worker died, or the task could not be sent
                result = execution.failure(err)
            on_result(futures[fut], result)
        try:  # every point is done: free the workers' kept kernels (a shared cluster needs its memory back)
            client.run(execution.shutdown_all)
        except Exception:  # they go with their workers anyway
            pass
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        if own:
            client.close()


def _local_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------------------------
# The sweep


def _points(n: int) -> str:
    return f"{n} point{'' if n == 1 else 's'}"


def _notebook_file(point: Mapping) -> str:
    label = "_".join(f"{k}={_cell(v)}" for k, v in point.items())
    safe = re.sub(r"[^A-Za-z0-9=._+-]", "-", label)[:120]
    if safe != label:
        safe += "-" + hashlib.sha1(_key(point).encode()).hexdigest()[:8]
    return f"{safe}.ipynb"


def _open_folder(out: Path, target: runner.Target, grid: dict, fixed: dict, force: bool) -> list[dict]:
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
    target = runner.resolve([str(notebook)])[0]
    grid, fixed = _check(target, grid, parameters or {})
    if dask is not None and workers is not None:
        raise ValueError(f"give workers (local) or dask (a cluster), not both; got workers={workers!r}")
    if dask is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ValueError("dask needs dask.distributed installed: pip install 'dask[distributed]'") from None
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an integer >= 1; got {workers!r}")
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
        _write_csv(out / RESULTS, everything)

    refresh()
    n_workers = min(workers or _local_workers(), max(1, len(todo)))
    where = f"the Dask cluster at {dask}" if isinstance(dask, str) else "a Dask cluster" if dask is not None \
        else f"{n_workers} local worker{'s' if n_workers > 1 else ''}"
    shape = " x ".join(f"{len(v)} {k}" for k, v in grid.items())
    echo(f"sweep {target.label} ({target.path.name}): {_points(len(points))} ({shape}); "
         + (f"{len(points) - len(todo)} already done in {out}, " if len(todo) < len(points) else "")
         + (f"{len(todo)} to run on {where}" if todo else "nothing to run"))

    source = target.path.read_text(encoding="utf-8")
    tasks = [{"source": source, "name": target.path.name, "path": str(target.path),
              "cwd": str(target.path.resolve().parent), "log_dir": str((out / "logs").resolve()),
              "kernel": KERNEL, "fresh": fresh_kernels, "timeout": timeout,
              "parameters": {**fixed, **p}, "point": p, "out_name": f"notebooks/{_notebook_file(p)}"}
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
        if todo and dask is not None:
            _run_dask(tasks, dask, on_result)
        elif todo:
            _run_local(tasks, n_workers, on_result)
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


# --------------------------------------------------------------------------------------------
# The figure


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _log_axis(values: list) -> bool:
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return _numeric(finite) and bool(finite) and min(finite) > 0 and max(finite) / min(finite) >= 20


def figure(table: Table, metric: str, *, log_x: bool | None = None, log_y: bool | None = None,
           height: int = 420):
    """A recorded quantity against the first grid parameter: one line per value of the second,
    one panel per value of the third (further grid parameters make more lines).

    Failed points and points that did not record ``metric`` leave gaps. ``log_x``/``log_y``
    default to a log axis when the values are positive and span a factor of 20 or more.
    Returns a ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from ..ui.plots import _PALETTE, COLORS

    if metric not in table.metrics:
        raise ValueError(f"metric must be a recorded quantity ({', '.join(table.metrics) or 'none recorded'}); "
                         f"got {metric!r}")
    ys = [r.get(metric) for r in table.rows if r["status"] == "ok" and r.get(metric) is not None]
    ys = [float(v) for v in ys if isinstance(v, (int, float))]
    if not ys:
        raise ValueError(f"metric {metric!r} has no numeric value in any ok row")
    x, rest = table.grid[0], table.grid[1:]
    facet = rest.pop(1) if len(rest) >= 2 else None
    xs = list(dict.fromkeys(r[x] for r in table.rows))
    numeric_x = _numeric(xs)
    if numeric_x:
        xs.sort()
    facets = list(dict.fromkeys(r[facet] for r in table.rows)) if facet else [None]
    lines = list(dict.fromkeys(tuple(r[k] for k in rest) for r in table.rows))
    cols = min(len(facets), 3)
    fig = make_subplots(rows=math.ceil(len(facets) / cols), cols=cols, shared_yaxes=True,
                        subplot_titles=[f"{facet}={v!r}" for v in facets] if facet else None,
                        horizontal_spacing=0.06)
    for j, fv in enumerate(facets):
        for i, line in enumerate(lines):
            by_x = {r[x]: r for r in table.rows if (facet is None or r[facet] == fv)
                    and tuple(r[k] for k in rest) == line}
            if not by_x:
                continue
            y = [by_x[v].get(metric) if v in by_x and by_x[v]["status"] == "ok" else None for v in xs]
            y = [float(v) if isinstance(v, (int, float)) else None for v in y]
            name = " ".join(f"{k}={v!r}" for k, v in zip(rest, line)) or metric
            color = COLORS.get(str(line[0]).lower()) if len(line) == 1 else None
            fig.add_trace(go.Scatter(
                x=xs if numeric_x else [str(v) for v in xs], y=y, name=name, legendgroup=name, showlegend=j == 0,
                mode="lines+markers", line={"color": color or _PALETTE[i % len(_PALETTE)], "width": 2.5},
                hovertemplate=f"{x}=%{{x}}<br>{metric}=%{{y:.4g}}<extra>{html.escape(name)}</extra>"),
                row=j // cols + 1, col=j % cols + 1)
    log_x = _log_axis(xs) if log_x is None and numeric_x else bool(log_x)
    log_y = _log_axis(ys) if log_y is None else log_y
    fig.update_xaxes(title_text=x + (" (log scale)" if log_x else ""), type="log" if log_x else None)
    fig.update_yaxes(type="log" if log_y else "linear")
    fig.update_yaxes(title_text=metric + (" (log scale)" if log_y else ""), col=1)
    n_ok = sum(1 for r in table.rows if r["status"] == "ok")
    fig.update_layout(
        title={"text": f"{table.notebook}: {metric} against {x} ({n_ok} of {_points(len(table.rows))} ok)",
               "x": 0.02, "xanchor": "left"},
        template="plotly_white", height=height * math.ceil(len(facets) / cols),
        margin={"l": 70, "r": 20, "t": 70, "b": 50},
        legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.02},
        showlegend=bool(rest))
    return fig
