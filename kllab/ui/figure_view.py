"""One plotly figure as a small widget that redraws in place: :class:`FigureView`.

A knob panel (:mod:`kllab.ui.widgets`) shows each of its figures in a ``FigureView``. The kernel
sends the figure's JSON (plotly's own, with arrays base64-encoded) and the knob values it shows;
the page applies it with ``Plotly.react`` on the figure already drawn, which diffs the traces and
redraws only what changed. That is tens of milliseconds where a fresh plot per update (an
``Output`` widget replacing its plotly MIME output: a new plot, a second full redraw on resize, and
a PNG snapshot of it) took several hundred.

plotly.js is not sent with the widget: it is the one that JupyterLab's and Voila's plotly extension
loads once per page (``window.Plotly``). The panel holds a hidden, empty plotly MIME output
(:func:`plotly_loader`) so that the extension loads it even on a page with no other plotly figure.
Where the page lists no plotly extension in its config (a front end without it), the view asks the
kernel at once for the ``plotly.min.js`` that the plotly package ships, so nothing is downloaded from
the network.
"""

from __future__ import annotations

import anywidget
import ipywidgets as W
import traitlets

__all__ = ["FigureView", "plotly_loader", "LOADER_META"]

LOADER_META = "kllab-plotly-loader"
"""The ``layout.meta`` of the loader's empty figure, so that a page's tests can tell it from real figures."""

_ESM = r"""
let loading = null;          // one load of plotly.js per page, shared by every view

function hasPlotlyExtension() {  // JupyterLab's and Voila's page config lists the page's extensions
  try {
    const cfg = JSON.parse(document.getElementById("jupyter-config-data").textContent);
    return (cfg.federated_extensions || []).some((e) => e.name === "jupyterlab-plotly");
  } catch (err) {
    return false;
  }
}

function plotly(model) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (loading) return loading;
  // With the plotly extension the page loads plotly.js for the panel's hidden loader output: wait for
  // it (a slow page may take seconds). Without it, ask the kernel at once.
  const wait = hasPlotlyExtension() ? 60000 : 0;
  loading = new Promise((resolve, reject) => {
    const t0 = Date.now();
    let asked = false;
    const onMsg = (msg) => {
      if (!msg || msg.type !== "plotly.js") return;
      model.off("msg:custom", onMsg);
      if (window.Plotly) return;
      const s = document.createElement("script");
      s.textContent = msg.source;
      document.head.appendChild(s);
    };
    const poll = () => {
      if (window.Plotly) return resolve(window.Plotly);
      if (!asked && Date.now() - t0 >= wait) {
        asked = true;
        model.on("msg:custom", onMsg);
        model.send({type: "need-plotly.js"});
      }
      if (Date.now() - t0 > wait + 60000) return reject(new Error("plotly.js did not load"));
      setTimeout(poll, 20);
    };
    poll();
  });
  return loading;
}

export default {
  render({ model, el }) {
    const div = document.createElement("div");
    div.className = "kl-figure";
    el.appendChild(div);
    let drawing = false, again = false, gone = false, drawn = null;
    async function draw() {
      if (drawing) { again = true; return; }   // the latest figure is drawn when this one is done
      drawing = true;
      try {
        do {
          again = false;
          const fig = model.get("figure") || {};
          const knobs = model.get("knobs") || {};
          const Plotly = await plotly(model);
          if (gone) return;
          const config = Object.assign({responsive: true, displaylogo: false}, fig.config || {});
          const t0 = performance.now();
          const react = fig !== drawn;  // the same figure at other knob values only changes data-knobs
          if (react) {
            await Plotly.react(div, fig.data || [], fig.layout || {}, config);
            drawn = fig;
          }
          const t1 = performance.now();
          div.dataset.knobs = JSON.stringify(knobs);
          div.dataset.serial = String(model.get("serial"));
          div.dataset.drawMs = (t1 - t0).toFixed(1);
          div.dataset.drawnAt = t1.toFixed(1);
          if (react) {
            div.dataset.drawnLog = ((div.dataset.drawnLog || "") + " " + t1.toFixed(1)).trim().split(" ").slice(-16).join(" ");
          }
        } while (again && !gone);
      } catch (err) {
        div.textContent = "The figure could not be drawn: " + err;
      } finally {
        drawing = false;
      }
    }
    const onChange = () => { div.dataset.receivedAt = performance.now().toFixed(1); draw(); };
    model.on("change:serial", onChange);
    draw();
    return () => {
      gone = true;
      model.off("change:serial", onChange);
      if (window.Plotly) window.Plotly.purge(div);
    };
  }
};
"""


class FigureView(anywidget.AnyWidget):
    """A plotly figure in the page, redrawn in place with ``Plotly.react`` when :meth:`show` sends a new one.

    ``figure`` is the figure's JSON (a dict, as :func:`kllab.ui.plots.mime_bundle` gives it),
    ``knobs`` the knob values it was computed at, and ``serial`` counts the figures sent; the page
    marks the drawn figure's ``<div>`` with ``data-knobs`` and ``data-serial`` once it is drawn, and
    with when its last figure arrived (``data-received-at``, the page's ``performance.now()``), how long
    ``Plotly.react`` took (``data-draw-ms``) and when it ended (``data-drawn-at``; the last 16 such times in
    ``data-drawn-log``, counting only the draws that changed the figure), for the benchmarks.
    """

    _esm = _ESM
    figure = traitlets.Dict().tag(sync=True)
    knobs = traitlets.Dict().tag(sync=True)
    serial = traitlets.Int(0).tag(sync=True)

    def __init__(self, figure: dict, knobs: dict | None = None, **kwargs):
        super().__init__(figure=figure, knobs=dict(knobs or {}), **kwargs)
        self.on_msg(self._on_custom)

    def show(self, figure: dict, knobs: dict) -> None:
        """Send a figure and the knob values it shows, in one message (traitlets sends the figure only if it
        changed)."""
        with self.hold_sync():
            self.figure = figure
            self.knobs = dict(knobs)
            self.serial += 1

    def _on_custom(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("type") == "need-plotly.js":
            from plotly.offline import get_plotlyjs

            self.send({"type": "plotly.js", "source": get_plotlyjs()})


def plotly_loader() -> W.Output:
    """A hidden ``Output`` holding an empty plotly figure: it makes the page's plotly extension load
    plotly.js (once per page), which every :class:`FigureView` then uses."""
    bundle = {"application/vnd.plotly.v1+json": {"data": [], "layout": {"height": 10, "meta": LOADER_META}}}
    return W.Output(outputs=({"output_type": "display_data", "data": bundle, "metadata": {}},),
                    layout=W.Layout(display="none"))
