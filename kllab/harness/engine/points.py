"""One run of one notebook: a *task* in, a plain result dict out (picklable, for Dask workers too).

A task carries the notebook's text, so a remote worker needs kllab installed but not the caller's
disk; the executed notebook comes back in the result.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from . import kernels

__all__ = ["task_for", "run_point", "failure", "describe_failure", "first_line"]

_LOCAL = threading.local()   # the notebook the papermill engine last ran in this thread
_LOCK = threading.Lock()
_ENGINE = "kllab-kept-kernel"


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped."""
    return next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")


_INSERTED = {"injected-parameters", "papermill-error-cell-tag"}  # cells papermill adds to the source's


def describe_failure(nb, err: BaseException) -> str:
    """``'cell N ("first line of source"): Error: message'``, from papermill's error and the executed notebook.

    N counts the cells of the source notebook (from 0), not the cells papermill inserts.
    """
    ename = getattr(err, "ename", type(err).__name__)
    evalue = first_line(str(getattr(err, "evalue", err)))
    where = ""
    source = [c for c in (nb.cells if nb is not None else [])
              if not _INSERTED & set(c.get("metadata", {}).get("tags", []))]
    for index, cell in enumerate(source):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            where = f'cell {index} ("{first_line(cell.source)[:60]}"): '
            break
    return f"{where}{ename}: {evalue}"


def task_for(path: str | Path, parameters: Mapping | None = None, *, fresh: bool = False, timeout: int = 600,
             log_dir: str | Path | None = None, out_name: str | None = None, cwd: str | Path | None = None,
             kernel: str = "python3", **extra) -> dict:
    """A task running the notebook at ``path`` with ``parameters`` (papermill's ``-p``).

    ``cwd`` defaults to the notebook's folder, ``log_dir`` (where the kernels' stderr goes) to the
    system's temporary folder, ``out_name`` (the executed notebook's ``output_path`` in its
    papermill metadata) to the notebook's file name. Other keywords are kept in the task.
    """
    path = Path(path)
    return {"source": path.read_text(encoding="utf-8"), "name": path.name, "path": str(path),
            "cwd": str(Path(cwd) if cwd is not None else path.resolve().parent),
            "log_dir": str(log_dir if log_dir is not None else Path(tempfile.gettempdir()) / f"kllab-logs-{os.getuid()}"),
            "kernel": kernel, "fresh": bool(fresh), "timeout": int(timeout), "parameters": dict(parameters or {}),
            "out_name": out_name or path.name, **extra}


def _register_engine() -> None:
    """A papermill engine that runs on a kernel it is given (``km=``) and closes its client after."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger

    with _LOCK:
        if _ENGINE in papermill_engines._engines:
            return

        class KeptKernelEngine(NBClientEngine):
            @classmethod
            def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                         stderr_file=None, start_timeout=60, execution_timeout=None, km=None,
                                         **kwargs):
                client = PapermillNotebookClient(
                    nb_man, km=km, timeout=execution_timeout, startup_timeout=start_timeout,
                    kernel_name=kernel_name, log=logger, log_output=log_output, stdout_file=stdout_file,
                    stderr_file=stderr_file)
                try:
                    return client.execute()
                finally:
                    _LOCAL.nb = nb_man.nb
                    if client.kc is not None:
                        client.kc.stop_channels()

        papermill_engines.register(_ENGINE, KeptKernelEngine)


def _source_file(task: dict) -> str:
    """The notebook's text in a file on this worker (the task carries it, so no shared disk is needed)."""
    digest = hashlib.sha1(task["source"].encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"kllab-run-{os.getuid()}" / digest / task["name"]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(task["source"], encoding="utf-8")
        os.replace(tmp, path)
    return str(path)


def _writable(folder: str) -> str:
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return folder
    except OSError:  # a remote worker without the client's disk
        return tempfile.gettempdir()


def _cell_seconds(nb) -> float:
    """Seconds the cells themselves took, from papermill's per-cell metadata."""
    return sum(float(c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0) for c in nb.cells)


def run_point(task: dict) -> dict:
    """Execute one task in this thread's kept kernel (or a fresh one); never raises for a notebook's error.

    Parameters
    ----------
    task : from :func:`task_for`: ``{"source": notebook JSON text, "name": its file name, "path":
        its path (for the record), "cwd": working directory (a temporary one if it does not exist
        here), "log_dir": where the kernels' stderr goes, "kernel": kernel name, "fresh": a new
        kernel for this run, "timeout": seconds per cell, "parameters": {NAME: value}, "out_name":
        the executed notebook's output path in its metadata}``

    Returns
    -------
    dict : ``status`` ("ok" or "failed"), ``error`` (one line naming the cell), ``seconds`` (wall),
        ``cell_seconds`` (the cells' own time; the rest is kernel reset and papermill's
        bookkeeping), ``checks`` (the check cell's lines), ``records`` ({name: value}) and
        ``notebook`` (the executed notebook's JSON text, or None if it never started).
    """
    import nbformat

    from ..nbtools import check_lines
    from ..record import read

    t0 = time.perf_counter()
    cwd = task["cwd"] if os.path.isdir(task["cwd"]) else tempfile.gettempdir()
    log_dir = _writable(task["log_dir"])
    _LOCAL.nb = None
    error, kernel, cell_error = "", None, False
    try:  # the kernel first, so that it boots while papermill is imported
        kernel = (kernels.Kernel(task["kernel"], cwd, log_dir, keep=False) if task["fresh"]
                  else kernels.kept_kernel(task["kernel"], cwd, log_dir))
        import papermill

        _register_engine()
        kernel.prepare(cwd)
        kernel.runs += 1
        papermill.execute_notebook(
            _source_file(task), None, parameters=task["parameters"], engine_name=_ENGINE,
            kernel_name=task["kernel"], progress_bar=False, request_save_on_cell_execute=False,
            execution_timeout=task["timeout"], km=kernel.km)
    except Exception as err:  # a cell's error, or the kernel died, timed out, failed to reset: report it
        cell_error = type(err).__name__ == "PapermillExecutionError"
        error = err if cell_error else f"{type(err).__name__}: {first_line(str(err)) or repr(err)}"
    nb = _LOCAL.nb
    text = None
    if nb is not None:
        nb.metadata.setdefault("papermill", {}).update(input_path=task["path"], output_path=task["out_name"])
        text = nbformat.writes(nb)
    if isinstance(error, Exception):
        error = describe_failure(nb, error)
    if kernel is not None and (task["fresh"] or (error and not cell_error)):
        # A cell that raised leaves a healthy kernel (the next reset cleans up after it); a kernel
        # that died, timed out or failed to reset is replaced.
        if task["fresh"]:
            kernel.shutdown()
        else:
            kernels.drop_kept_kernel()
    return {"status": "failed" if error else "ok", "error": error, "seconds": time.perf_counter() - t0,
            "cell_seconds": _cell_seconds(nb) if nb is not None else 0.0,
            "checks": check_lines(nb) if nb is not None else [], "records": read(nb) if nb is not None else {},
            "notebook": text}


def failure(err: BaseException) -> dict:
    """The result of a task that could not run at all (its worker died, say)."""
    return {"status": "failed", "error": f"{type(err).__name__}: {first_line(str(err)) or repr(err)}",
            "seconds": 0.0, "cell_seconds": 0.0, "checks": [], "records": {}, "notebook": None}
