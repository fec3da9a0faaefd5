"""A sweep's figure: a recorded quantity against the grid, drawn with plotly."""

from __future__ import annotations

import html
import math

from .table import Table

__all__ = ["figure"]


def _points(n: int) -> str:
    return f"{n} point{'' if n == 1 else 's'}"


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

    from ...ui.plots import _PALETTE, COLORS

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
