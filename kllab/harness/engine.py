"""Executing one notebook point in a Jupyter kernel kept from point to point, for :mod:`kllab.harness.sweep`.

:func:`run_point` runs one papermill execution of a notebook with some parameters and returns its
status, error, seconds, recorded values (:mod:`kllab.harness.record`) and the executed notebook's text. It
runs in a thread of a local sweep or on a Dask worker, and needs kllab installed there but not the
caller's disk: the notebook travels in the task and comes back in the result.

Kept kernels. Starting a kernel and importing torch and plotly takes a few seconds, more than a
FAST notebook's own work, so each worker thread keeps one kernel and reuses it from point to point.
Before every point the kernel is brought back to its state after start-up: the user namespace is
cleared (as ``%reset -f``), the execution counter set to 1, and the working directory, environment
variables, ``sys.path``, warning filters, NumPy's error and print settings, torch's default dtype,
thread count, grad mode and deterministic flag, and plotly's default renderer and template are
restored; the global random generators of Python, NumPy and torch start as in a new process
(reseeded from the OS, or for a torch whose start-up seed is fixed, restored to it). Imported
modules stay imported. A point that fails takes its kernel with it: the next point starts a new
one. A kernel whose worker process dies exits too (ipykernel watches its parent).
``task["fresh"]`` starts a new kernel for the point instead, for notebooks that change other
process-wide state.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import run as runner

__all__ = ["run_point", "failure", "kill_all", "shutdown_all", "kernel_baseline", "kernel_restore"]

_LOCAL = threading.local()   # this thread's kept kernel, and the notebook the engine last ran
_KERNELS: list = []          # every kernel this process started, to shut down at exit
_LOCK = threading.Lock()
_AT_EXIT: list = []          # whether shutdown_all is registered to run at exit
_ENGINE = "kllab-kept-kernel"


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


class _Kernel:
    """A Jupyter kernel that runs points: kept for many (reset before each) or fresh for one."""

    def __init__(self, kernel_name: str, cwd: str, log_dir: str, keep: bool):
        from jupyter_client import KernelManager

        self.kernel_name, self.keep, self.owner = kernel_name, keep, threading.get_ident()
        self.km = KernelManager(kernel_name=kernel_name,
                                client_class="jupyter_client.asynchronous.AsyncKernelClient")  # nbclient's kind
        name = f"kernels-{os.uname().nodename}-{os.getpid()}.log"
        self.log = open(Path(log_dir) / name, "ab", buffering=0)
        self.km.start_kernel(cwd=cwd, stdout=self.log, stderr=self.log)
        with _LOCK:
            if not _KERNELS and not _AT_EXIT:  # once per process (a local sweep, a Dask worker)
                atexit.register(shutdown_all)
                _AT_EXIT.append(True)
            _KERNELS.append(self)
        self.control, self.pending = None, None
        if keep:  # sent now, awaited in prepare(): the kernel boots while this thread imports papermill
            self.control = self.km.blocking_client()
            self.control.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
            self.pending = self._send("__import__('kllab.harness.engine', fromlist=['_']).kernel_baseline()")

    def _send(self, code: str) -> str:
        return self.control.execute(code, silent=True, store_history=False, allow_stdin=False)

    def _wait(self, msg_id: str, timeout: float) -> None:
        from queue import Empty

        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self.control.get_shell_msg(timeout=1.0)
            except Empty:
                if not self.km.is_alive():
                    raise RuntimeError("the kernel died while it was being reset") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the kernel did not answer within {timeout:.0f} s") from None
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        if reply["content"]["status"] != "ok":
            c = reply["content"]
            raise RuntimeError(f"resetting the kept kernel failed: {c.get('ename')}: {c.get('evalue')}")

    def prepare(self, cwd: str) -> None:
        """Before a point: a kept kernel is reset to its baseline and moved to ``cwd``."""
        if not self.keep:
            return
        if self.pending:
            self._wait(self.pending, timeout=120)
            self.pending = None
        self._wait(self._send(f"__import__('kllab.harness.engine', fromlist=['_']).kernel_restore({cwd!r})"), timeout=60)

    def alive(self) -> bool:
        return self.km.is_alive()

    def kill(self) -> None:
        """Kill the kernel's process and nothing else: safe from any thread (zmq sockets are not).

        The thread that drives the kernel then finds it dead within a second, fails its point
        and shuts the rest down itself.
        """
        try:
            self.km.signal_kernel(signal.SIGKILL)
        except Exception:  # already gone
            pass

    def shutdown(self) -> None:
        """Close the channels and kill the kernel: only from the thread that drives it, or once it has stopped."""
        try:
            if self.control is not None:
                self.control.stop_channels()
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=True)
        except Exception:  # already gone
            pass
        finally:
            self.log.close()
            with _LOCK:
                if self in _KERNELS:
                    _KERNELS.remove(self)


def kill_all(owners: set[int]) -> None:
    """Kill the kernels started by the threads ``owners`` (from another thread, to stop their points)."""
    for k in list(_KERNELS):
        if k.owner in owners:
            k.kill()


def shutdown_all(owners: set[int] | None = None) -> None:
    """Shut down the kernels this process started (only those started by the threads ``owners``)."""
    for k in list(_KERNELS):
        if owners is None or k.owner in owners:
            k.shutdown()


def _kernel_for(task: dict, cwd: str, log_dir: str) -> _Kernel:
    if task["fresh"]:
        return _Kernel(task["kernel"], cwd, log_dir, keep=False)
    kernel = getattr(_LOCAL, "kernel", None)
    if kernel is not None and (kernel.kernel_name != task["kernel"] or not kernel.alive()):
        kernel.shutdown()
        kernel = None
    if kernel is None:
        kernel = _LOCAL.kernel = _Kernel(task["kernel"], cwd, log_dir, keep=True)
    return kernel


def _source_file(task: dict) -> str:
    """The notebook's text in a file on this worker (the task carries it, so no shared disk is needed)."""
    digest = hashlib.sha1(task["source"].encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"kllab-sweep-{os.getuid()}" / digest / task["name"]
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


def run_point(task: dict) -> dict:
    """Execute one point; never raises for a notebook's error (the result says what failed).

    Parameters
    ----------
    task : ``{"source": notebook JSON text, "name": its file name, "path": its path (for the
        record), "cwd": working directory (a temporary one if it does not exist here),
        "log_dir": where the kernel's stderr goes, "kernel": kernel name, "fresh": a new kernel
        for this point, "timeout": seconds per cell, "parameters": {NAME: value},
        "out_name": the executed notebook's name in the sweep folder}``

    Returns
    -------
    dict : ``status`` ("ok" or "failed"), ``error`` (one line naming the cell, as ``kllab run``
        says it), ``seconds``, ``records`` ({name: value}) and ``notebook`` (the executed
        notebook's JSON text, or None if it never started).
    """
    import nbformat

    from .record import read

    t0 = time.perf_counter()
    cwd = task["cwd"] if os.path.isdir(task["cwd"]) else tempfile.gettempdir()
    log_dir = _writable(task["log_dir"])
    _LOCAL.nb = None
    error, kernel = "", None
    try:
        kernel = _kernel_for(task, cwd, log_dir)  # first, so that it boots while papermill is imported
        import papermill

        _register_engine()
        kernel.prepare(cwd)
        papermill.execute_notebook(
            _source_file(task), None, parameters=task["parameters"], engine_name=_ENGINE,
            kernel_name=task["kernel"], progress_bar=False, request_save_on_cell_execute=False,
            execution_timeout=task["timeout"], km=kernel.km)
    except Exception as err:  # a cell's error, or the kernel died, timed out, failed to reset: report it
        cell_error = type(err).__name__ == "PapermillExecutionError"
        error = err if cell_error else f"{type(err).__name__}: {runner._first_line(str(err)) or repr(err)}"
    nb = _LOCAL.nb
    text = None
    if nb is not None:
        nb.metadata.setdefault("papermill", {}).update(input_path=task["path"], output_path=task["out_name"])
        text = nbformat.writes(nb)
        if isinstance(error, Exception):  # 'cell N ("first line"): Error: message', as `kllab run` says it
            with tempfile.TemporaryDirectory() as tmp:
                saved = Path(tmp) / task["name"]
                saved.write_text(text, encoding="utf-8")
                error = runner._describe_failure(saved, error)
    elif isinstance(error, Exception):
        error = f"{error.ename}: {runner._first_line(str(error.evalue))}"
    if kernel is not None and (error or task["fresh"]):
        kernel.shutdown()  # a failed point may leave its kernel in any state
        if getattr(_LOCAL, "kernel", None) is kernel:
            _LOCAL.kernel = None
    return {"status": "failed" if error else "ok", "error": error, "seconds": time.perf_counter() - t0,
            "records": read(nb) if nb is not None else {}, "notebook": text}


# The two functions below run inside a kept kernel (imported there as kllab.harness.engine).
_BASELINE: dict = {}


def kernel_baseline() -> None:
    """Remember the process-wide state of a just-started kernel (importing numpy, torch, plotly first)."""
    import warnings

    state = {"environ": dict(os.environ), "path": list(sys.path), "warnings": list(warnings.filters)}
    try:
        import numpy as np

        state["numpy"] = (np.geterr(), np.get_printoptions())
    except ImportError:
        pass
    try:
        import torch

        fixed_seed = torch.initial_seed() == 67280421310721  # older torch: every process starts from this seed
        state["torch"] = {"dtype": torch.get_default_dtype(), "threads": torch.get_num_threads(),
                          "rng": torch.random.get_rng_state() if fixed_seed else None,
                          "deterministic": torch.are_deterministic_algorithms_enabled()}
    except ImportError:
        pass
    try:
        import plotly.io as pio

        state["plotly"] = (pio.renderers.default, pio.templates.default)
    except ImportError:
        pass
    _BASELINE.clear()
    _BASELINE.update(state)


def kernel_restore(cwd: str) -> None:
    """Bring a kept kernel back to its baseline before the next point (see the module docstring)."""
    import random
    import warnings

    ip = get_ipython()  # noqa: F821 - runs in a kernel
    ip.reset(new_session=False)
    ip.execution_count = 1
    s = _BASELINE
    os.environ.clear()
    os.environ.update(s["environ"])
    sys.path[:] = s["path"]
    warnings.filters[:] = s["warnings"]
    getattr(warnings, "_filters_mutated", lambda: None)()
    random.seed()
    if "numpy" in s:
        import numpy as np

        np.seterr(**s["numpy"][0])
        np.set_printoptions(**s["numpy"][1])
        np.random.seed()
    if "torch" in s:
        import torch

        t = s["torch"]
        torch.set_default_dtype(t["dtype"])
        torch.set_num_threads(t["threads"])
        torch.set_grad_enabled(True)
        if torch.are_deterministic_algorithms_enabled() != t["deterministic"]:  # (the setter imports dynamo: 2 s)
            torch.use_deterministic_algorithms(t["deterministic"])
        if t["rng"] is None:
            torch.seed()  # a new process's seed is random: draw a new one
        else:
            torch.random.set_rng_state(t["rng"])
        torch.set_printoptions(profile="default")
    if "plotly" in s:
        import plotly.io as pio

        pio.renderers.default, pio.templates.default = s["plotly"]
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib
        import matplotlib.pyplot as plt

        plt.close("all")
        matplotlib.rc_file_defaults()
    os.chdir(cwd)  # (the reset above already ran the garbage collector)


def failure(err: BaseException) -> dict:
    """The result of a point whose task could not run at all (its worker died, say)."""
    return {"status": "failed", "error": f"{type(err).__name__}: {runner._first_line(str(err)) or repr(err)}",
            "seconds": 0.0, "records": {}, "notebook": None}
