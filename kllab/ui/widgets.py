"""The knob panel: widgets for direction, temperature, width (and extras) over a pure function.

A notebook's sections call a pure function, say ``figures(direction, temperature, width)``,
that returns plotly figures. :class:`KnobPanel` shows the same figures beside one widget per
argument; moving a knob re-calls the function and redraws the figures. Headless runs never build
a panel: the numbers come from the plain function, so papermill, nbval and the panel agree by
construction.

Each figure sits in an ``ipywidgets.Output`` as plotly's MIME bundle, drawn by the plotly.js that
JupyterLab's and Voila's plotly extension loads once per page. (A ``go.FigureWidget`` would update
in place, but each one ships plotly's 5 MB widget bundle over the kernel's websocket and has the
browser compile it again: seconds and tens of MB per figure, for every page opened.)
"""

from __future__ import annotations

import html
import math
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as W
import plotly.graph_objects as go

from .plots import mime_bundle

__all__ = ["KnobPanel", "choice", "slider", "log_slider", "options_slider", "solution"]

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


def _output(fig: go.Figure) -> tuple[dict]:
    """An ``Output`` widget's outputs that show ``fig``: one display of plotly's MIME bundle."""
    return ({"output_type": "display_data", "data": mime_bundle(fig), "metadata": {}},)


class KnobPanel:
    """Widgets over a pure function that returns one figure or a list of figures.

    Parameters
    ----------
    compute : callable
        Called as ``compute(**values)`` with one keyword per knob; returns a
        ``go.Figure`` or a sequence of them (always the same number).
    knobs : mapping of argument name to widget
        Build them with :func:`choice`, :func:`slider`, :func:`log_slider`,
        :func:`options_slider`. Their initial values give the first view, which therefore
        equals the headless run when the notebook passes its parameters.
    title : str, optional
        A line of text above the knobs.

    Attributes
    ----------
    figures : list of go.Figure
        The figures on show (replaced at each redraw).
    widget : ipywidgets.VBox
        What the notebook displays (the panel itself displays as this).

    A ``ValueError`` from ``compute`` (say, a knob at an edge where the toy is undefined)
    is shown as a one-line notice under the knobs, any other exception as a one-line error;
    the figures keep their last view (see :meth:`update`).
    """

    def __init__(self, compute: Callable[..., go.Figure | Sequence[go.Figure]],
                 knobs: Mapping[str, W.ValueWidget], *, title: str | None = None):
        if not knobs:
            raise ValueError("knobs must name at least one widget; got none")
        self.compute = compute
        self.knobs = dict(knobs)
        self.figures = self._call()
        self.outputs = [W.Output(outputs=_output(f)) for f in self.figures]
        self.updates = self.errors = 0
        self.status = W.HTML()
        self._status("")
        for w in self.knobs.values():
            w.observe(self._on_change, names="value")
        head = [W.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        controls = W.HBox(list(self.knobs.values()), layout=W.Layout(flex_flow="row wrap", gap="4px 16px"))
        self.widget = W.VBox(head + [controls, self.status] + self.outputs)

    def values(self) -> dict:
        """The knobs' current values, by argument name."""
        return {name: w.value for name, w in self.knobs.items()}

    def _call(self) -> list[go.Figure]:
        out = self.compute(**self.values())
        return [out] if isinstance(out, go.Figure) else list(out)

    def _on_change(self, _change=None) -> None:
        self.update()

    def update(self) -> None:
        """Re-call ``compute`` with the current knob values and redraw every figure.

        While it runs the status line says "computing…". A ``ValueError`` (a knob value where the
        toy is undefined) becomes a one-line notice; any other exception a one-line error, with
        its traceback on the kernel's stderr (the server log under Voila). The figures keep their
        last good view either way. :attr:`updates` counts the finished updates and
        :attr:`errors` the failed ones; both are mirrored in the status line's HTML as
        ``data-updates`` and ``data-errors`` for the browser tests.
        """
        self._status("<i>computing…</i>", busy=True)
        try:
            figs = self._call()
            if len(figs) != len(self.figures):
                raise RuntimeError(f"compute returned {len(figs)} figures; the panel shows {len(self.figures)}")
        except ValueError as err:
            self._finish(f"<span class='kl-notice' style='color:#b00'>{html.escape(_one_line(err))}</span>")
            return
        except Exception as err:  # a bug: say so in one line, keep the traceback for the log
            self.errors += 1
            traceback.print_exc(file=sys.stderr)
            self._finish(f"<span class='kl-error' style='color:#b00'><b>error:</b> "
                         f"{html.escape(type(err).__name__)}: {html.escape(_one_line(err))}</span>")
            return
        for out, fig in zip(self.outputs, figs):
            shown = _output(fig)
            if shown != out.outputs:  # a figure this knob leaves alone is not drawn again
                out.outputs = shown
        self.figures = figs
        self._finish("")

    def _status(self, inner: str, busy: bool = False) -> None:
        self.status.value = (f"<div class='kl-status' data-updates='{self.updates}' data-errors='{self.errors}' "
                             f"data-busy='{int(busy)}'>{inner}</div>")

    def _finish(self, inner: str) -> None:
        self.updates += 1
        self._status(inner)

    @property
    def message(self) -> str:
        """The status line's text: "" after a clean redraw, else the notice or error shown."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.status.value))

    def set(self, **values) -> None:
        """Set knobs by name (as a reader would), which redraws the figures."""
        for name, v in values.items():
            if name not in self.knobs:
                raise ValueError(f"knob must be one of {list(self.knobs)}; got {name!r}")
            self.knobs[name].value = v

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
