"""The knob panel: widgets for direction, temperature, width (and extras) over a pure function.

A notebook's sections call a pure function, say ``figures(direction, temperature, width)``,
that returns plotly figures. :class:`KnobPanel` shows the same figures beside one widget per
argument; moving a knob re-calls the function and redraws the figures. Headless runs never build
a panel: the numbers come from the plain function, so papermill, nbval and the panel agree by
construction.

Each figure is a :class:`~kllab.ui.figure_view.FigureView`: the kernel sends the figure's JSON and
the page redraws it in place with ``Plotly.react``, using the plotly.js that the page's plotly
renderer loads once per page (plotly's extension in JupyterLab, kllab's in the dashboards). (A
``go.FigureWidget`` would also update in place, but each one ships plotly's 5 MB widget bundle over
the kernel's websocket and has the browser compile it again: seconds and tens of MB per figure, for
every page opened.) In a kernel the computations run in a worker thread, latest value first: see
:class:`KnobPanel`.
"""

from __future__ import annotations

import ctypes
import html
import inspect
import json
import math
import re
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as W
import plotly.graph_objects as go

from .figure_view import FigureView, plotly_loader
from .plots import mime_bundle

__all__ = ["KnobPanel", "Stale", "choice", "slider", "log_slider", "options_slider", "solution"]

_STYLE = {"description_width": "initial"}


def choice(options: Sequence, value=None, description: str = "") -> W.ToggleButtons:
    """A row of toggle buttons, e.g. for ``direction``."""
    value = options[0] if value is None else value
    if value not in options:
        raise ValueError(f"{description or 'value'} must be one of {list(options)}; got {value!r}")
    return W.ToggleButtons(options=list(options), value=value, description=description, style=_STYLE)


def slider(low: float, high: float, value: float, step: float | None = None, description: str = "",
           integer: bool = False) -> W.FloatSlider | W.IntSlider:
    """A linear slider that only fires when released (no flood of recomputations)."""
    if not low <= value <= high:
        raise ValueError(f"{description or 'value'} must be in [{low}, {high}]; got {value!r}")
    cls = W.IntSlider if integer else W.FloatSlider
    kw = {} if step is None else {"step": step}
    return cls(min=low, max=high, value=value, description=description, continuous_update=False,
               style=_STYLE, layout=W.Layout(width="380px"), **kw)


def log_slider(low: float, high: float, value: float, description: str = "", steps_per_decade: int = 10,
               ratio: float | None = None) -> W.FloatLogSlider:
    """A base-10 log slider between ``low`` and ``high`` (both > 0); neighbouring positions differ by the
    factor ``ratio`` (default ``10 ** (1 / steps_per_decade)``)."""
    if not 0 < low <= value <= high:
        raise ValueError(f"{description or 'value'} must be in [{low}, {high}] (and > 0); got {value!r}")
    step = math.log10(ratio) if ratio is not None else 1.0 / steps_per_decade
    return W.FloatLogSlider(min=math.log10(low), max=math.log10(high), value=value, base=10,
                            step=step, description=description, continuous_update=False,
                            readout_format=".3g", style=_STYLE, layout=W.Layout(width="380px"))


def options_slider(options: Sequence, value=None, description: str = "") -> W.SelectionSlider:
    """A slider over a fixed list of values, e.g. widths 16, 64, 256, 1024."""
    value = options[0] if value is None else value
    if value not in options:
        raise ValueError(f"{description or 'value'} must be one of {list(options)}; got {value!r}")
    return W.SelectionSlider(options=list(options), value=value, description=description,
                             continuous_update=False, style=_STYLE, layout=W.Layout(width="380px"))


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else repr(err)


def _figure_json(fig: go.Figure) -> dict:
    return mime_bundle(fig)["application/vnd.plotly.v1+json"]


class Stale(BaseException):
    """Raised inside a knob computation whose knob values are no longer on the panel (a newer move
    arrived). It derives from ``BaseException`` so that a notebook's ``except Exception`` lets it
    through; the panel catches it and says nothing."""


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    return hasattr(get_ipython(), "kernel")


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in another thread at its next Python instruction (``None`` withdraws a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


def _trim_heap() -> None:
    """Give the memory freed by finished computations back to the system (glibc's ``malloc_trim``): each
    computation runs in a new thread, and glibc keeps what a thread's arena freed."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _canonical(value):
    """A knob's value as the panel reads it: a float to 10 significant digits, since the page's slider
    arithmetic leaves noise in the last bits of a position (0.30000000000000004 for 0.3, one step up and
    down); anything else as it is.

    >>> _canonical(0.1 + 0.2), _canonical(10 ** -0.9), _canonical(3)
    (0.3, 0.1258925412, 3)
    """
    return float(f"{value:.10g}") if isinstance(value, float) else value


def _key(values: Mapping) -> tuple:
    """A cache key for knob values (read with :func:`_canonical`)."""
    return tuple((k, _canonical(v)) for k, v in values.items())


def _grid_steps(pos: float, lo: float, hi: float, step: float) -> list[float]:
    """The slider positions one key press from ``pos``, as the page's slider moves: one step either way,
    snapped to the grid ``lo + k * step`` (a value between two grid points goes to the nearer one),
    and clamped to the ends."""
    k = (pos - lo) / step
    out = []
    for d in (1, -1):
        x = lo + math.floor(k + d + 0.5) * step
        x = min(max(x, lo), hi)
        if not math.isclose(x, pos, rel_tol=1e-12, abs_tol=1e-12):
            out.append(x)
    return out


def _option_values(w: W.ValueWidget) -> list:
    """A selection's option values, in order (an option given as ``(label, value)`` by its value)."""
    return [o[1] if isinstance(o, tuple) else o for o in w.options]


def _neighbours(w: W.ValueWidget) -> list:
    """The values one key press away from a control's value: a slider's step either way, another option."""
    v = w.value
    if isinstance(w, (W.ToggleButtons, W.Dropdown, W.RadioButtons)):
        return [o for o in _option_values(w) if o != v]
    if isinstance(w, W.SelectionSlider):
        opts = _option_values(w)
        i = opts.index(v)
        return [opts[j] for j in (i + 1, i - 1) if 0 <= j < len(opts)]
    if isinstance(w, W.FloatLogSlider):
        return [w.base ** x for x in _grid_steps(math.log(v, w.base), w.min, w.max, w.step)]
    if isinstance(w, W.IntSlider):
        return [int(round(x)) for x in _grid_steps(v, w.min, w.max, w.step)]
    if isinstance(w, W.FloatSlider):
        return _grid_steps(v, w.min, w.max, w.step)
    return []


PREFETCH_DELAY = 0.3
"""Seconds a prefetch waits after figures were sent: the page draws them first (on one machine, the
browser and the kernel share its cores). Prefetches that follow one another do not wait."""


class _Job:
    """One computation: the knob values, the move count it belongs to, and whether its result is drawn."""

    def __init__(self, values: dict, gen: int, current: bool):
        self.values, self.key, self.gen, self.current = values, _key(values), gen, current
        self.thread: threading.Thread | None = None
        self._jsons: dict = {}

    def json(self, fig: go.Figure) -> dict:
        """The figure's JSON, converted once per computation (an intermediate yield may be the final figure)."""
        out = self._jsons.get(id(fig))
        if out is None or out[0] is not fig:
            out = self._jsons[id(fig)] = (fig, _figure_json(fig))
        return out[1]


class KnobPanel:
    """Widgets over a pure function that returns one figure or a list of figures.

    Parameters
    ----------
    compute : callable
        Called as ``compute(**values)`` with one keyword per knob; returns a
        ``go.Figure`` or a sequence of them (always the same number). It must be pure: the
        panel keeps the figures of recent values and reuses them. A compute that trains may
        instead be a generator that **yields** the figure list several times as they come (say
        after each quarter of the training steps), with ``None`` for a figure not computed yet:
        the page draws each yield at once, marked "computing…", and the last yield, complete, is
        the result (what the panel keeps, and what a headless caller gets).
    knobs : mapping of argument name to widget
        Build them with :func:`choice`, :func:`slider`, :func:`log_slider`,
        :func:`options_slider`. Their initial values give the first view, which therefore
        equals the headless run when the notebook passes its parameters.
    title : str, optional
        A line of text above the knobs.
    background : bool, optional
        Compute in a worker thread (the default in a Jupyter kernel) or in the caller's
        thread (the default elsewhere, e.g. in a plain IPython shell or a script).
    prefetch : bool
        With ``background``: once the figures show the current values, compute the values one
        key press away (each slider one step either way, each other option) while the reader
        looks, and send their figures to the page, so that the next move redraws at once, drawn
        by the page itself. Any move stops it.
    cache_size : int
        How many sets of knob values keep their figures (most recent first).

    Attributes
    ----------
    figures : list of go.Figure
        The figures on show (replaced at each redraw).
    shown : dict
        The knob values the figures on show were computed at.
    compute_s : float
        The seconds the figures on show took to compute (when they were computed, for figures the panel
        drew from its cache).
    views : list of FigureView
        The widgets that draw :attr:`figures` in the page.
    widget : ipywidgets.VBox
        What the notebook displays (the panel itself displays as this).

    **Latest value wins.** In a kernel, a knob move does not compute in the kernel's main thread,
    which therefore stays free to receive the next moves: a worker thread computes the newest
    values of all knobs. A move that arrives while it computes cancels that computation (a
    :class:`Stale` exception raised between two of its Python instructions, so between training
    steps at the latest) and the worker starts again from the newest values; intermediate values
    are never computed, and a result whose values are no longer on the panel is never drawn. Each
    computation runs in a fresh thread, one at a time, so that a cancelled one cannot leave
    thread-local state (torch's grad mode, say) to the next.

    A ``ValueError`` from ``compute`` (say, a knob at an edge where the toy is undefined)
    is shown as a one-line notice under the knobs, any other exception as a one-line error;
    the figures keep their last view (see :meth:`update`).
    """

    def __init__(self, compute: Callable[..., go.Figure | Sequence[go.Figure]],
                 knobs: Mapping[str, W.ValueWidget], *, title: str | None = None, background: bool | None = None,
                 prefetch: bool = True, cache_size: int = 48):
        if not knobs:
            raise ValueError("knobs must name at least one widget; got none")
        if background is not None and not isinstance(background, bool):
            raise TypeError(f"background must be True, False or None; got {background!r}")
        if not isinstance(prefetch, bool):
            raise TypeError(f"prefetch must be True or False; got {prefetch!r}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size must be an integer >= 1; got {cache_size!r}")
        self.compute = compute
        self.knobs = dict(knobs)
        self.background = _in_kernel() if background is None else background
        self.prefetch, self.cache_size = prefetch and self.background, cache_size
        self.shown = self.values()
        t0 = time.perf_counter()
        self._figures = self._call(self.shown)
        self.compute_s = time.perf_counter() - t0  # the seconds the figures on show took to compute
        controls = [w.model_id for w in self.knobs.values()]
        self.views = [FigureView(_figure_json(f), self.shown, state=self._positions(self.shown), controls=controls,
                                 on_ready=self._on_ready) for f in self._figures]
        self.updates = self.errors = self.cancelled = self.computed = self.hits = self.partials = 0
        self.status = W.HTML()
        self._inner, self._busy = "", False
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._wanted = self._done = 0     # knob moves seen, and the move whose values the figures show
        self._job: _Job | None = None     # the computation in flight
        self._computing = False           # its thread is inside compute (a cancel may be sent)
        self._cancel_sent = False
        self._cache: OrderedDict = OrderedDict()
        self._queue: list[dict] = []      # values to prefetch
        self._last_move: tuple = (None, 0)  # the knob moved last, and which way
        self._sent_at = time.monotonic()  # when figures were last sent to the page (these first ones: now)
        self._remember(self.shown, [v.figure for v in self.views], self.compute_s)
        self._status("")
        for w in self.knobs.values():
            w.observe(self._on_change, names="value")
        head = [W.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        controls = W.HBox(list(self.knobs.values()), layout=W.Layout(flex_flow="row wrap", gap="4px 16px"))
        self.widget = W.VBox(head + [controls, self.status, *self.views, plotly_loader()])
        if self.prefetch:
            with self._lock:
                self._queue = self._around(self.shown)
                self._next()

    def _positions(self, values: Mapping) -> list:
        """The knobs' positions at ``values``, as the page reads them: a selection's index (``None`` if the value
        is not an option), any other value as :func:`_canonical` reads it."""
        out = []
        for name, w in self.knobs.items():
            v = values[name]
            if hasattr(w, "_options_labels"):  # a selection: the page syncs its index
                opts = _option_values(w)
                out.append(opts.index(v) if v in opts else None)
            else:
                out.append(_canonical(v))
        return out

    def _ahead(self, values: dict, jsons: list[dict], views=None) -> None:
        """Send the figures computed ahead for ``values`` to the page (to each view whose page has drawn), which
        draws them at once if the reader moves there; a figure equal to the one on show goes as a reference."""
        state = self._positions(values)
        for view, shown in zip(self.views, jsons):
            if view.ready and (views is None or view in views):
                same = bool(view.state) and shown == view.figure
                view.ahead(None if same else shown, values, state, same_as=view.state if same else ())

    def _on_ready(self, view: FigureView) -> None:
        """The page has drawn ``view``: send it the figures the panel computed ahead so far."""
        with self._lock:
            shown = _key(self.shown)
            for key, (values, texts, _) in list(self._cache.items()):
                if key != shown:
                    self._ahead(values, [json.loads(t) if v is view else None for t, v in zip(texts, self.views)],
                                views=(view,))

    def values(self) -> dict:
        """The knobs' current values, by argument name: what ``compute`` is called with (a float to 10
        significant digits: see :func:`_canonical`)."""
        return {name: _canonical(w.value) for name, w in self.knobs.items()}

    def _call(self, values: dict) -> list[go.Figure]:
        """``compute``'s figures at ``values`` (a generator compute run to its last yield)."""
        figs = None
        for figs, _ in self._steps(values):
            pass
        return figs

    def _steps(self, values: dict):
        """Yield ``(figures, partial)`` for ``compute`` at ``values``: once for a plain compute
        (``partial`` false); at each yield of a generator compute (``partial`` true), its ``None``
        filled from the yields before. The last figures have no ``None``."""
        out = self.compute(**values)
        if not inspect.isgenerator(out):
            yield ([out] if isinstance(out, go.Figure) else list(out)), False
            return
        figs = None
        for part in out:
            part = [part] if isinstance(part, go.Figure) else list(part)
            if figs is not None and len(part) != len(figs):
                raise RuntimeError(f"compute yielded {len(part)} figures after {len(figs)}")
            figs = part if figs is None else [f if f is not None else g for f, g in zip(part, figs)]
            yield figs, True
        if figs is None or any(f is None for f in figs):
            raise RuntimeError("compute's last yield must hold every figure; "
                               f"got {'nothing' if figs is None else [i for i, f in enumerate(figs) if f is None]}"
                               f"{'' if figs is None else ' missing'}")

    # -- the worker ---------------------------------------------------------------------------------------

    def _remember(self, values: dict, jsons: list[dict], seconds: float) -> None:
        """Keep the figures of ``values`` as JSON text (tens of kB a figure; plotly's objects take ten times that),
        with the seconds they took to compute."""
        if not self.background:
            return
        key = _key(values)
        self._cache[key] = (dict(values), [json.dumps(j) for j in jsons], seconds)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    @property
    def figures(self) -> list[go.Figure]:
        """The figures on show, as plotly figures (computed again from :attr:`shown` if the panel drew them
        from its cache)."""
        if self._figures is None:
            self._figures = self._call(self.shown)
        return self._figures

    def _around(self, values: dict) -> list[dict]:
        """The values to prefetch: the last knob moved first, one more step the way it went first."""
        out = []
        names = sorted(self.knobs, key=lambda n: n != self._last_move[0])
        for name in names:
            w = self.knobs[name]
            near = _neighbours(w) if _canonical(w.value) == values[name] else []
            if name == self._last_move[0] and self._last_move[1] < 0:
                near = near[::-1]
            out += [{**values, name: _canonical(v)} for v in near]
        return out

    def _on_change(self, _change=None) -> None:
        if not self.background:
            self.update()
            return
        with self._lock:
            self._wanted += 1
            self._note_move(_change)
            self._status("<i>computing…</i>", busy=True)
            job = self._job
            if job is None:
                self._next()
            elif job.key == _key(self.values()):  # already computing these values: draw them when done
                job.current, job.gen = True, self._wanted
            elif self._computing and not self._cancel_sent:
                self._cancel_sent = True
                _raise_in(job.thread.ident, Stale)

    def _note_move(self, change) -> None:
        """Remember which knob moved and which way (a slider's +1 or -1), for the prefetch's order."""
        if not change:
            return
        name = next((n for n, w in self.knobs.items() if w is change.get("owner")), None)
        way = 0
        try:
            way = 1 if change["new"] > change["old"] else -1
        except (KeyError, TypeError):
            pass
        self._last_move = (name, way)

    def _next(self) -> None:
        """With no computation in flight (and the lock held): draw the current values from the cache, or
        start computing them; once they are drawn, prefetch; else go idle."""
        if self._done != self._wanted:
            values = self.values()
            hit = self._cache.get(_key(values))
            if hit is None:
                self._start(_Job(values, self._wanted, current=True))
                return
            self.hits += 1
            self._cache.move_to_end(_key(values))
            self._publish(None, None, hit[0], [json.loads(t) for t in hit[1]], seconds=hit[2])
        while self.prefetch and self._queue:
            values = self._queue.pop(0)
            if _key(values) not in self._cache:
                self._start(_Job(values, self._wanted, current=False))
                return
        if not self._idle_shown:
            self._status()
            _trim_heap()
        self._idle.notify_all()

    def _start(self, job: _Job) -> None:
        self._job = job
        if self._idle_shown:
            self._status()
        job.thread = threading.Thread(target=self._work, args=(job,), name="kllab-knob-panel", daemon=True)
        job.thread.start()

    def _work(self, job: _Job) -> None:
        """Compute one job in this (fresh) thread, then hand over to the next."""
        me = threading.current_thread()
        figs = err = jsons = None
        stale = False
        try:
            while not job.current and job.gen == self._wanted:  # the page draws the figures just sent first
                wait = self._sent_at + PREFETCH_DELAY - time.monotonic()
                if wait <= 0:
                    break
                time.sleep(min(wait, PREFETCH_DELAY / 10))
            with self._lock:
                stale = job.gen != self._wanted
                self._computing, self._cancel_sent = not stale, False
            if not stale:
                t0 = time.perf_counter()
                try:
                    for figs, partial in self._steps(job.values):
                        if partial:
                            self._partial(job, figs, me)
                    dt = time.perf_counter() - t0
                except Stale:
                    raise
                except BaseException as e:  # shown below if still wanted
                    err = e
                with self._lock:
                    self._computing = False
                    if self._cancel_sent:
                        _raise_in(me.ident, None)  # withdraw a cancel that came after compute returned
        except Stale:
            with self._lock:
                self._computing, stale, figs = False, True, None
        with self._lock:
            self._job = None
            if figs is not None and err is None:
                self.computed += 1
                try:
                    jsons = [job.json(f) for f in figs]
                    self._remember(job.values, jsons, dt)
                    if not job.current:
                        self._ahead(job.values, jsons)
                except Exception as e:  # not a figure: shown as the computation's error
                    err = e
            if stale or job.gen != self._wanted:
                if job.current:
                    self.cancelled += 1
            elif job.current:
                self._publish(figs, err, job.values, jsons, seconds=dt if err is None and figs is not None else None)
            self._next()

    def _partial(self, job: _Job, figs: list, me: threading.Thread) -> None:
        """At a yield of a generator compute (in its thread): stop if a newer move came, else draw the
        figures yielded so far (``None``: not computed yet, the figure on show stays)."""
        with self._lock:
            self._computing = False  # no cancel lands while figures are being sent
            if self._cancel_sent:
                _raise_in(me.ident, None)
                self._cancel_sent = False
            if job.gen != self._wanted:
                raise Stale
            if job.current:
                for view, fig in zip(self.views, figs):
                    if fig is not None:
                        shown = job.json(fig)
                        if shown != view.figure or view.knobs != job.values:
                            view.show(shown, job.values)
                            self._sent_at = time.monotonic()
                self.partials += 1
            self._computing = True

    # -- drawing ------------------------------------------------------------------------------------------

    def update(self) -> None:
        """Re-call ``compute`` with the current knob values and redraw every figure (in this thread).

        While it runs the status line says "computing…". A ``ValueError`` (a knob value where the
        toy is undefined) becomes a one-line notice; any other exception a one-line error, with
        its traceback on the kernel's stderr (the server log under Voila). The figures keep their
        last good view either way. :attr:`updates` counts the finished updates and
        :attr:`errors` the failed ones; both are mirrored in the status line's HTML as
        ``data-updates`` and ``data-errors`` for the browser tests, with ``data-busy``.
        """
        self._status("<i>computing…</i>", busy=True)
        values = self.values()
        t0 = time.perf_counter()
        try:
            figs, err = self._call(values), None
        except Exception as e:
            figs, err = None, e
        self._publish(figs, err, values, seconds=time.perf_counter() - t0 if err is None else None)

    def _publish(self, figs, err, values, jsons=None, seconds: float | None = None) -> None:
        """Show a result for the current values: figures (or their JSON), or an error's one line; the panel is
        done (not busy) once they are sent. ``seconds``: what the figures took to compute."""
        self._done = self._wanted
        if err is None and figs is not None and len(figs) != len(self.views):
            err = RuntimeError(f"compute returned {len(figs)} figures; the panel shows {len(self.views)}")
        if isinstance(err, ValueError):
            self._finish(f"<span class='kl-notice' style='color:#b00'>{html.escape(_one_line(err))}</span>")
            return
        if err is not None:  # a bug: say so in one line, keep the traceback for the log
            self.errors += 1
            traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
            self._finish(f"<span class='kl-error' style='color:#b00'><b>error:</b> "
                         f"{html.escape(type(err).__name__)}: {html.escape(_one_line(err))}</span>")
            return
        jsons = jsons or [_figure_json(f) for f in figs]
        positions = self._positions(values)
        for view, shown in zip(self.views, jsons):
            if shown != view.figure or view.knobs != values:  # a figure this knob leaves alone is not sent again
                view.show(shown, values, positions)
                self._sent_at = time.monotonic()
        self._figures, self.shown = figs, dict(values)
        if seconds is not None:
            self.compute_s = seconds
        self._queue = self._around(values)
        self._finish("")

    def wait(self, timeout: float = 60.0, prefetched: bool = False) -> None:
        """Block until the figures show the knobs' current values (at once without a worker thread);
        with ``prefetched``, also until the values one key press away are computed."""
        if not self.background:
            return
        with self._lock:
            if not self._idle.wait_for(lambda: self._done == self._wanted and (
                    not prefetched or self._job is None and not self._queue), timeout):
                raise TimeoutError(f"the knob panel did not finish within {timeout} s (values {self.values()})")

    def _status(self, inner: str | None = None, busy: bool | None = None) -> None:
        """Redraw the status line; ``None`` keeps the text (or the busy flag) on show. ``data-idle`` says that
        no computation runs, not even a prefetch (the benchmarks wait for it); ``data-compute-ms`` is
        :attr:`compute_s` in milliseconds."""
        self._inner = self._inner if inner is None else inner
        self._busy = self._busy if busy is None else busy
        self._idle_shown = self._job is None
        self.status.value = (f"<div class='kl-status' data-updates='{self.updates}' data-errors='{self.errors}' "
                             f"data-busy='{int(self._busy)}' data-idle='{int(self._idle_shown)}' "
                             f"data-compute-ms='{1000 * self.compute_s:.1f}'>{self._inner}</div>")

    def _finish(self, inner: str) -> None:
        with self._lock:
            self.updates += 1
            self._status(inner, busy=False)
            self._idle.notify_all()

    @property
    def message(self) -> str:
        """The status line's text: "" after a clean redraw, else the notice or error shown."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.status.value))

    def set(self, **values) -> None:
        """Set knobs by name (as a reader would) and wait until the figures are redrawn."""
        for name in values:
            if name not in self.knobs:
                raise ValueError(f"knob must be one of {list(self.knobs)}; got {name!r}")
        for name, v in values.items():
            self.knobs[name].value = v
        self.wait()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class _Solution:
    """A collapsed ``<details>`` block: a worked solution the reader opens on purpose."""

    def __init__(self, title: str, lines: Sequence[str]):
        self.title, self.lines = title, list(lines)

    def _repr_html_(self) -> str:
        body = "<br>".join(html.escape(str(line)) for line in self.lines)
        return (f"<details class='kl-solution'><summary><b>{html.escape(self.title)}</b> (click to open)</summary>"
                f"<div style='margin:4px 0 0 16px;font-family:monospace'>{body}</div></details>")

    def __repr__(self) -> str:
        return "\n".join([self.title, *self.lines])


def solution(title: str, *lines: str) -> None:
    """Show the numbers of a worked solution, collapsed until the reader opens it.

    A notebook's solution cell computes, asserts what the written solution states, then calls
    ``solution("Exercise 1", f"pi*(correct) = {value:.4f}")``. In JupyterLab, Voila and the HTML
    export this is a closed ``<details>`` block (so it stays out of a dashboard's first view);
    outside a kernel it prints the lines.

    >>> solution("Exercise 1", "x = 2")
    Exercise 1
    x = 2
    """
    if not isinstance(title, str) or not title:
        raise ValueError(f"title must be a non-empty string; got {title!r}")
    block = _Solution(title, lines)
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        get_ipython = lambda: None  # noqa: E731
    if get_ipython() is None:
        print(repr(block))
        return
    from IPython.display import display

    display(block)
