"""Kernels that have done their imports before a page asks for one: :class:`WarmKernelManager`.

A dashboard's first figure waits for a kernel to start (about a second) and for the notebook's first
cell to import torch, SciPy, plotly and kllab (two to three seconds more). Voila's own preheating
runs the whole notebook ahead and keeps its state, a kernel per notebook: too much memory for a
gallery of them on Binder's 2 GB. This kernel manager keeps a small pool (one kernel by default) of
kernels that have imported those modules and drawn one throwaway figure, and nothing else: their
user namespace is empty, so a notebook that forgets an import fails here as it fails everywhere.
A page takes a pooled kernel if one is ready, and the pool starts its replacement at once.

Voila uses it through ``VoilaConfiguration.multi_kernel_manager_class`` (``kllab/harness/voila.json``).
A pooled kernel starts in Voila's root folder and with Voila's environment; it is handed out only
for a page whose kernel would start there with the same kernel name (every kllab notebook sits in
``notebooks/``). Unlike a kernel started for the page, it does not see the page's request in its
environment (``SCRIPT_NAME``, ``QUERY_STRING``...), which no kllab notebook reads. Pooled kernels
are exempt from idle culling; they are shut down with the server.

Every kernel it starts, pooled or not, runs its math libraries on one thread each (OpenBLAS, OpenMP, MKL:
:attr:`WarmKernelManager.kernel_threads`). A dashboard's kernel shares the machine's cores with the browser
that draws its figures, and the notebooks' matrices are small: two BLAS threads on a busy core wait for each
other. Here, an SVD of a 600 x 128 matrix with one core busy took a median 22 ms (at worst 163 ms) on two
threads and 7 ms (15 ms) on one; idle, 10.5 ms and 7 ms.
"""

from __future__ import annotations

import asyncio
import os

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.ioloop import IOLoop
from traitlets import Float, Integer, List, Unicode

__all__ = ["WarmKernelManager", "WARM_MODULES", "THREAD_VARIABLES", "warm_code"]

WARM_MODULES = [
    "numpy", "torch", "scipy.optimize", "scipy.special", "scipy.stats", "plotly.graph_objects", "plotly.io",
    "plotly.io._renderers", "sklearn.datasets", "sklearn.kernel_ridge", "sklearn.naive_bayes", "ipywidgets",
    "anywidget", "IPython.display", "kllab.ui.plots", "kllab.ui.widgets", "kllab.ui.figure_view",
    "kllab.harness.ranges", "kllab.harness.record", "kllab.harness.catalog", "kllab.maths",
]
"""What a pooled kernel imports (and every module of ``kllab.maths``): what the notebooks import before their
first figure, and what a figure's first ``.show()`` imports in a kernel (plotly's renderers, which bring
nbformat and jsonschema: 1.3 s here, else paid by every dashboard's first figure)."""

THREAD_VARIABLES = ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"]
"""The environment variables that set how many threads the kernel's math libraries start (torch's intra-op
pool and scikit-learn's OpenMP read the first; NumPy's and SciPy's OpenBLAS the second)."""


def warm_code(modules: list[str]) -> str:
    """The code a pooled kernel runs: import ``modules`` and every ``kllab.maths`` module, run the torch
    operations whose first call imports more (``torch.broadcast_shapes``, which ``torch.distributions``
    calls, imports SymPy), build one figure of each kind and one ``go.Figure`` with a named template (plotly
    loads its validators on first use, every trace type's for a template), and leave no name behind in the user
    namespace."""
    return f"""
def _kllab_warm():
    import importlib, pkgutil
    for name in {modules!r}:
        importlib.import_module(name)
    import kllab.maths
    for info in pkgutil.walk_packages(kllab.maths.__path__, "kllab.maths."):
        importlib.import_module(info.name)
    import torch
    (torch.linspace(0, 1, 8).softmax(0) * 2).sum().item()
    torch.broadcast_shapes((1,), (2,))
    import plotly.graph_objects as go
    go.Figure(data=[go.Scatter(y=[0, 1], marker={{"size": 3}})],
              layout=go.Layout(template="plotly_white", shapes=[{{"type": "line", "line": {{"width": 1}}}}]))
    from kllab.ui import plots
    for fig in (plots.lines([0, 1], {{"a": [0, 1]}}, title="warm"), plots.bars(["a"], {{"b": [1]}}, title="warm"),
                plots.heatmap([[0, 1]], title="warm")):
        plots.mime_bundle(fig)
_kllab_warm()
del _kllab_warm
"""


class WarmKernelManager(AsyncMappingKernelManager):
    """A Jupyter Server kernel manager that hands out kernels which have already done their imports."""

    warm_pool_size = Integer(1, config=True, help="How many warm kernels to keep ready (0: none).")
    warm_modules = List(Unicode(), default_value=WARM_MODULES, config=True,
                        help="Modules a warm kernel imports before it is handed out.")
    warm_timeout = Float(120.0, config=True, help="Seconds a kernel may take to warm up before it is dropped.")
    warm_refill_delay = Float(8.0, config=True,
                              help="Seconds between handing out a warm kernel and warming its replacement, so "
                                   "that the page gets the machine's cores while it runs its notebook.")
    kernel_threads = Integer(1, config=True,
                             help="Threads per math library (OpenBLAS, OpenMP, MKL) in the kernels it starts, unless "
                                  "the server's environment sets them (0: the libraries' own default, one a core).")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._ready: dict[tuple, list[str]] = {}  # (kernel name, cwd) -> warm kernel ids
        self._warming: dict[tuple, int] = {}
        self._pooled: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        if self.warm_pool_size > 0:  # once the server's event loop runs
            IOLoop.current().add_callback(self.prefill)

    def _thread_env(self, kwargs: dict) -> dict:
        """``kwargs`` for a kernel's start, its environment with :data:`THREAD_VARIABLES` set to
        :attr:`kernel_threads` where the environment does not set them already."""
        if self.kernel_threads <= 0:
            return kwargs
        env = dict(kwargs["env"] if kwargs.get("env") is not None else os.environ)
        for name in THREAD_VARIABLES:
            env.setdefault(name, str(self.kernel_threads))
        return {**kwargs, "env": env}

    def _pool_key(self, kernel_name: str | None, path: str | None) -> tuple:
        return (kernel_name or self.default_kernel_name, self.cwd_for_path(path or ""))

    async def start_kernel(self, *, kernel_id: str | None = None, path: str | None = None, **kwargs) -> str:
        """A warm kernel if one is ready for this kernel name and folder (and the refill of the pool),
        else a new kernel as usual."""
        if kernel_id is None and self.warm_pool_size > 0:
            key = self._pool_key(kwargs.get("kernel_name"), path)
            ready = self._ready.get(key, [])
            while ready:
                kid = ready.pop(0)
                self._pooled.discard(kid)
                if kid in self and await self.get_kernel(kid).is_alive():
                    self._kernels[kid].last_activity = utcnow()
                    self.log.info("Handing out warm kernel %s", kid)
                    self._refill(key, kwargs.get("kernel_name"), path, delay=self.warm_refill_delay)
                    return kid
            self._refill(key, kwargs.get("kernel_name"), path, delay=self.warm_refill_delay)
        return await super().start_kernel(kernel_id=kernel_id, path=path, **self._thread_env(kwargs))

    def prefill(self, kernel_name: str | None = None, path: str | None = None) -> None:
        """Start warming the pool for a kernel name and folder (Voila's root by default) now."""
        self._refill(self._pool_key(kernel_name, path), kernel_name, path)

    def _refill(self, key: tuple, kernel_name: str | None, path: str | None, delay: float = 0.0) -> None:
        missing = self.warm_pool_size - len(self._ready.get(key, [])) - self._warming.get(key, 0)
        for _ in range(max(0, missing)):
            self._warming[key] = self._warming.get(key, 0) + 1
            task = asyncio.ensure_future(self._warm_one(key, kernel_name, path, delay))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _warm_one(self, key: tuple, kernel_name: str | None, path: str | None, delay: float) -> None:
        kid = None
        try:
            await asyncio.sleep(delay)
            kwargs = {"kernel_name": kernel_name} if kernel_name else {}
            kid = await super().start_kernel(path=path, **self._thread_env(kwargs))
            self._pooled.add(kid)
            client = self.get_kernel(kid).client()
            client.start_channels()
            try:
                await client.wait_for_ready(timeout=self.warm_timeout)
                reply = await client.execute_interactive(warm_code(list(self.warm_modules)), silent=True,
                                                         store_history=False, timeout=self.warm_timeout)
            finally:
                client.stop_channels()
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}")
            self._ready.setdefault(key, []).append(kid)
            self.log.info("Warm kernel %s ready (%d in the pool)", kid, len(self._ready[key]))
        except Exception as err:
            self.log.warning("A warm kernel failed to start, pages get new kernels: %s", err)
            if kid is not None and kid in self:
                self._pooled.discard(kid)
                await self.shutdown_kernel(kid, now=True)
        finally:
            self._warming[key] -= 1

    async def cull_kernel_if_idle(self, kernel_id: str):
        """Idle culling, except for the pool's kernels (they wait for a page by design)."""
        if kernel_id in self._pooled:
            return None
        return await super().cull_kernel_if_idle(kernel_id)

    @property
    def pooled(self) -> list[str]:
        """The ids of the warm kernels waiting for a page."""
        return sorted(self._pooled)
