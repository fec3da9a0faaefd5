"""Kept kernels: one Jupyter kernel per worker thread, reset to its start-up state before each run.

The two functions at the end, :func:`kernel_baseline` and :func:`kernel_restore`, run *inside*
the kernel (imported there as ``kllab.harness.engine.kernels``).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from pathlib import Path

__all__ = ["Kernel", "kept_kernel", "drop_kept_kernel", "kill_all", "shutdown_all", "kernel_baseline",
           "kernel_restore"]

_LOCAL = threading.local()   # this thread's kept kernel
_KERNELS: list = []          # every kernel this process started, to shut down at exit
_LOCK = threading.Lock()
_AT_EXIT: list = []          # whether shutdown_all is registered to run at exit
HISTORY_OFF = ["--HistoryManager.enabled=False"]
_IN_KERNEL = "__import__('kllab.harness.engine.kernels', fromlist=['_'])"


class Kernel:
    """A Jupyter kernel that runs notebooks: kept for many (reset before each) or fresh for one."""

    def __init__(self, kernel_name: str, cwd: str, log_dir: str, keep: bool):
        from jupyter_client import KernelManager

        self.kernel_name, self.keep, self.owner = kernel_name, keep, threading.get_ident()
        self.km = KernelManager(kernel_name=kernel_name,
                                client_class="jupyter_client.asynchronous.AsyncKernelClient")  # nbclient's kind
        name = f"kernels-{os.uname().nodename}-{os.getpid()}.log"
        self.log = open(Path(log_dir) / name, "ab", buffering=0)
        # Kernels started together would share IPython's history database and print "ERROR! Session/line
        # number was not unique in database" into the notebooks: a notebook run needs no history.
        self.km.start_kernel(cwd=cwd, stdout=self.log, stderr=self.log, extra_arguments=HISTORY_OFF)
        self.runs = 0
        with _LOCK:
            if not _KERNELS and not _AT_EXIT:  # once per process (a local run, a Dask worker, a test session)
                atexit.register(shutdown_all)
                _AT_EXIT.append(True)
            _KERNELS.append(self)
        self.control, self.pending = None, None
        if keep:  # sent now, awaited in prepare(): the kernel boots while this thread imports papermill
            self.control = self.km.blocking_client()
            self.control.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
            self.pending = self._send(f"{_IN_KERNEL}.kernel_baseline()")

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
        """Before a run: a kept kernel is reset to its baseline and moved to ``cwd``."""
        if not self.keep:
            return
        if self.pending:
            self._wait(self.pending, timeout=120)
            self.pending = None
        self._wait(self._send(f"{_IN_KERNEL}.kernel_restore({cwd!r})"), timeout=60)

    def alive(self) -> bool:
        return self.km.is_alive()

    def kill(self) -> None:
        """Kill the kernel's process and nothing else: safe from any thread (zmq sockets are not).

        The thread that drives the kernel then finds it dead within a second, fails its run and
        shuts the rest down itself.
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


def kept_kernel(kernel_name: str, cwd: str, log_dir: str) -> Kernel:
    """This thread's kept kernel, started (or replaced, if it died or is of another kind) as needed."""
    kernel = getattr(_LOCAL, "kernel", None)
    if kernel is not None and (kernel.kernel_name != kernel_name or not kernel.alive()):
        drop_kept_kernel()
        kernel = None
    if kernel is None:
        kernel = _LOCAL.kernel = Kernel(kernel_name, cwd, log_dir, keep=True)
    return kernel


def drop_kept_kernel() -> None:
    """Shut this thread's kept kernel down (the next run starts a new one)."""
    kernel = getattr(_LOCAL, "kernel", None)
    _LOCAL.kernel = None
    if kernel is not None:
        kernel.shutdown()


def kill_all(owners: set[int]) -> None:
    """Kill the kernels started by the threads ``owners`` (from another thread, to stop their runs)."""
    for k in list(_KERNELS):
        if k.owner in owners:
            k.kill()


def shutdown_all(owners: set[int] | None = None) -> None:
    """Shut down the kernels this process started (only those started by the threads ``owners``)."""
    for k in list(_KERNELS):
        if owners is None or k.owner in owners:
            k.shutdown()


# The two functions below run inside a kept kernel.
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
    """Bring a kept kernel back to its baseline before the next run (see :mod:`kllab.harness.engine`)."""
    import random
    import warnings

    ip = get_ipython()  # noqa: F821 - runs in a kernel
    if "ipywidgets" in sys.modules:  # the last notebook's panel and figure widgets, with their comms
        sys.modules["ipywidgets"].Widget.close_all()
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
    os.chdir(cwd)
    # The reset above ran the garbage collector over every module's objects (0.2 s with torch, SciPy
    # and plotly loaded). What survives it is the kernel's lasting state (modules and what they hold);
    # frozen, it is skipped by the next resets' collections, which then scan only what a notebook
    # made. Frozen objects are still freed by reference counting; only a cycle among them that
    # later becomes garbage would stay, until the kernel is replaced.
    import gc

    gc.freeze()
