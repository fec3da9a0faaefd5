"""Plotly figure builders: one call per figure in a notebook.

Every builder takes plain numbers (lists, NumPy arrays or tensors) and returns a complete
``plotly.graph_objects.Figure`` with its title and axis labels, so the same figure serves the
headless run, the knob panel (:mod:`kllab.ui.widgets`) and a static export. The numerics of kllab
never import this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

__all__ = ["Figure", "mime_bundle", "lines", "bars", "heatmap", "COLORS"]

COLORS = {
    "target": "#222222", "forward": "#1f77b4", "reverse": "#d62728", "js": "#2ca02c",
    "tv": "#9467bd", "hellinger": "#8c564b", "alpha": "#e377c2", "renyi": "#7f7f7f",
    "reference": "#7f7f7f", "base": "#7f7f7f",
}
"""One colour per name, so "forward" is the same blue in every notebook."""

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
            "#17becf", "#bcbd22", "#7f7f7f"]


def mime_bundle(fig: go.Figure) -> dict:
    """``{"application/vnd.plotly.v1+json": ...}``: a figure as plotly's MIME type, which JupyterLab and
    Voila draw with the plotly.js their extension loads once per page."""
    import json

    from plotly.io._json import to_json_plotly

    return {"application/vnd.plotly.v1+json": json.loads(to_json_plotly(fig.to_dict()))}


class Figure(go.Figure):
    """A ``plotly.graph_objects.Figure`` that shows itself in a Jupyter kernel as plotly's MIME bundle, directly.

    ``fig.show()`` in a kernel displays ``{"application/vnd.plotly.v1+json": ...}``, the output
    plotly's default renderer gives there, without importing plotly's renderer machinery, which
    imports nbformat and jsonschema: a second or two before a dashboard's first figure. With any
    argument (``fig.show(renderer="browser")``), or outside a kernel, it is plotly's ``show``.
    Its layout starts from the ``plotly_white`` template, assigned as plotly assigns its default
    template (a registered template is valid already): a tenth of the cost of
    ``update_layout(template="plotly_white")``, which validates a deep copy of it, 13 ms a figure.
    Everything else is ``go.Figure``.
    """

    def _initialize_layout_template(self):
        layout = self._layout_obj
        if layout._props.get("template") is None:
            import plotly.io as pio

            validate, layout._validate = layout._validate, False
            try:
                layout.template = pio.templates["plotly_white"]
            finally:
                layout._validate = validate

    def _bundle(self) -> dict:
        return mime_bundle(self)

    def show(self, *args, **kwargs):
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:  # pragma: no cover - IPython comes with Jupyter
            shell = None
        if args or kwargs or shell is None or not hasattr(shell, "kernel"):
            return super().show(*args, **kwargs)
        from IPython.display import display

        display(self._bundle(), raw=True)

    def _repr_mimebundle_(self, include=None, exclude=None, validate=True, **kwargs):
        try:
            from IPython import get_ipython

            in_kernel = hasattr(get_ipython(), "kernel")
        except ImportError:  # pragma: no cover
            in_kernel = False
        if in_kernel:
            return self._bundle()
        return super()._repr_mimebundle_(include, exclude, validate, **kwargs)


def _np(v) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=float)


def _color(name: str, i: int) -> str:
    key = name.split(" ")[0].lower()
    return COLORS.get(key, _PALETTE[i % len(_PALETTE)])


def _layout(fig: go.Figure, title: str, xlabel: str, ylabel: str, height: int) -> go.Figure:
    # The legend sits between the title and the plot: leave one line of margin per legend row
    # (about 100 characters of names fit on a row at the default width), so they never overlap.
    names = [t.name for t in fig.data if t.name and t.showlegend is not False]
    rows = math.ceil(sum(len(n) + 6 for n in names) / 100) if len(names) > 1 else 0
    fig.update_layout(
        title={"text": title, "x": 0.02, "xanchor": "left", "y": 0.98, "yanchor": "top", "yref": "container"},
        xaxis_title=xlabel, yaxis_title=ylabel,
        height=height + 20 * rows, margin={"l": 60, "r": 20, "t": 50 + 22 * rows, "b": 50},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
    )
    return fig


def lines(x, ys: Mapping[str, Sequence[float]], *, title: str, xlabel: str = "", ylabel: str = "",
          log_x: bool = False, log_y: bool = False, markers: bool = False,
          dashed: Sequence[str] = (), fill: Sequence[str] = (), xs: Mapping[str, Sequence[float]] | None = None,
          hline: float | None = None, vline: float | None = None, height: int = 380) -> go.Figure:
    """Line chart: one trace per entry of ``ys`` over ``x`` (or over ``xs[name]`` if given).

    Parameters
    ----------
    dashed, fill : names of traces drawn dashed, or filled to zero.
    hline, vline : draw a dotted horizontal (vertical) reference line at this y (x).
    """
    fig = Figure()
    for i, (name, y) in enumerate(ys.items()):
        xv = _np(xs[name]) if xs and name in xs else _np(x)
        fig.add_trace(go.Scatter(
            x=xv, y=_np(y), name=name, mode="lines+markers" if markers else "lines",
            line={"color": _color(name, i), "dash": "dash" if name in dashed else "solid", "width": 2.5},
            fill="tozeroy" if name in fill else None))
    if hline is not None:
        fig.add_hline(y=hline, line_dash="dot", line_color="#999999")
    if vline is not None:
        fig.add_vline(x=vline, line_dash="dot", line_color="#999999")
    fig.update_xaxes(type="log" if log_x else "linear")
    fig.update_yaxes(type="log" if log_y else "linear")
    return _layout(fig, title, xlabel, ylabel, height)


def bars(categories: Sequence, series: Mapping[str, Sequence[float]], *, title: str, xlabel: str = "",
         ylabel: str = "", log_y: bool = False, height: int = 380) -> go.Figure:
    """Grouped bar chart: one bar group per category, one colour per entry of ``series``."""
    fig = Figure()
    cats = [str(c) for c in categories]
    for i, (name, values) in enumerate(series.items()):
        fig.add_trace(go.Bar(x=cats, y=_np(values), name=name, marker_color=_color(name, i)))
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log" if log_y else "linear")
    return _layout(fig, title, xlabel, ylabel, height)


def heatmap(z, *, title: str, x: Sequence | None = None, y: Sequence | None = None, xlabel: str = "",
            ylabel: str = "", zmin: float | None = None, zmax: float | None = None,
            colorscale: str = "RdBu_r", height: int = 380) -> go.Figure:
    """Heatmap of a matrix ``z`` (rows are y, columns are x)."""
    fig = Figure(go.Heatmap(z=_np(z), x=None if x is None else list(x), y=None if y is None else list(y),
                            zmin=zmin, zmax=zmax, colorscale=colorscale))
    return _layout(fig, title, xlabel, ylabel, height)
