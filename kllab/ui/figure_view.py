"""One plotly figure as a small widget that redraws in place: :class:`FigureView`.

A knob panel (:mod:`kllab.ui.widgets`) shows each of its figures in a ``FigureView``. The kernel
sends the figure's JSON (plotly's own, with arrays base64-encoded) and the knob values it shows;
the page applies it with ``Plotly.react`` on the figure already drawn, which diffs the traces and
redraws only what changed. That is tens of milliseconds where a fresh plot per update (an
``Output`` widget replacing its plotly MIME output: a new plot, a second full redraw on resize, and
a PNG snapshot of it) took several hundred.

plotly.js is not sent with the widget: it is the one the page loads once for its plotly MIME outputs
(``window.Plotly``). In kllab's dashboards that is kllab's own plotly renderer (the ``kllab-plotly``
extension in ``kllab/harness/jupyter/labextensions``, with plotly.js's cartesian bundle); in JupyterLab
it is plotly's extension. The panel holds a hidden, empty plotly MIME output (:func:`plotly_loader`) so
that the page loads it even when no other plotly figure is on it. Where the page lists neither
extension in its config (a front end without them), the view asks the kernel at once for the
``plotly.min.js`` that the plotly package ships, so nothing is downloaded from the network.

The page also keeps the figures it is sent, by the knobs' positions, and listens to the knob widgets
themselves: a move to a position whose figure it holds (one the kernel computed ahead, see
:meth:`FigureView.ahead`) is drawn at once, with no round trip to the kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
  if (window.kllabPlotly) return window.kllabPlotly.load();  // kllab's dashboards: plotly.js's cartesian bundle
  if (loading) return loading;
  // With plotly's extension the page loads plotly.js for the panel's hidden loader output: wait for
  // it (a slow page may take seconds). Without it (nor kllab's), ask the kernel at once.
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

// The positions of the panel's knobs, as one string: a selection's index, a number to 10 significant digits
// (as the kernel reads it; the page's slider arithmetic leaves noise in the last bits).
function keyOf(state) {
  return JSON.stringify(state.map((v) => (typeof v === "number" ? Number(v.toPrecision(10)) : v)));
}

function position(knob) {
  const labels = knob.get("_options_labels");
  return labels !== undefined && labels !== null ? knob.get("index") : knob.get("value");
}

const KEPT = 64;  // figures kept in the page per view

export default {
  render({ model, el }) {
    const div = document.createElement("div");
    div.className = "kl-figure";
    el.appendChild(div);
    let drawing = false, again = false, gone = false, drawn = null, ready = false;
    // The figures the kernel sent for knob positions (on show, or computed ahead while the reader looks):
    // a move to one of them is drawn at once, before the kernel answers with the same figure.
    const kept = new Map();
    let shownKey = null, local = null, knobs = [];
    const keep = (key, figure, values) => {
      kept.delete(key);
      kept.set(key, {figure, knobs: values});
      if (kept.size > KEPT) kept.delete(kept.keys().next().value);
    };
    const currentKey = () => (knobs.length ? keyOf(knobs.map(position)) : null);
    const fromKernel = () => {
      const state = model.get("state") || [];
      const key = state.length ? keyOf(state) : null;   // no state: a partial figure (training), not kept
      const fig = model.get("figure") || {}, values = model.get("knobs") || {};
      if (key !== null) keep(key, fig, values);
      return {fig, knobs: values, key};
    };
    async function draw() {
      if (drawing) { again = true; return; }   // the latest figure is drawn when this one is done
      drawing = true;
      try {
        do {
          again = false;
          let t = local;
          local = null;
          if (t === null) {
            t = fromKernel();
            const now = currentKey();
            div.dataset.serial = String(model.get("serial"));
            // the page already shows the knobs' positions (from what it kept): the kernel's figure is older
            if (shownKey !== null && shownKey === now && t.key !== now) continue;
          }
          const Plotly = await plotly(model);
          if (gone) return;
          const config = Object.assign({responsive: true, displaylogo: false}, t.fig.config || {});
          const t0 = performance.now();
          // the same figure (or the same knob positions: the same figure again) only changes data-knobs
          const react = t.fig !== drawn && (t.key === null || t.key !== shownKey);
          if (react) {
            if (div.classList.contains("kl-figure-error")) {  // the last figure failed: start afresh
              div.classList.remove("kl-figure-error");
              div.textContent = "";
            }
            await Plotly.react(div, t.fig.data || [], t.fig.layout || {}, config);
            drawn = t.fig;
            const unknown = window.kllabPlotly ? window.kllabPlotly.unknownTraces(div, t.fig.data) : [];
            if (unknown.length) throw new Error(window.kllabPlotly.unknownMessage(unknown));
          }
          shownKey = t.key;
          const t1 = performance.now();
          div.dataset.knobs = JSON.stringify(t.knobs);
          if (t.local) div.dataset.localDraws = String(+(div.dataset.localDraws || 0) + 1);
          if (react) {
            div.dataset.drawMs = (t1 - t0).toFixed(1);
            div.dataset.drawnAt = t1.toFixed(1);
            div.dataset.drawnLog = ((div.dataset.drawnLog || "") + " " + t1.toFixed(1)).trim().split(" ").slice(-16).join(" ");
          } else if (t.key === null || !div.dataset.drawnAt) {  // a partial figure's knobs, or the first view
            div.dataset.drawMs = (t1 - t0).toFixed(1);
            div.dataset.drawnAt = t1.toFixed(1);
          }
        } while (again && !gone);
      } catch (err) {
        if (window.Plotly) window.Plotly.purge(div);
        div.className = "kl-figure kl-figure-error";
        div.textContent = "The figure could not be drawn: " + (err && err.message ? err.message : err);
      } finally {
        drawing = false;
      }
      if (!ready && !gone && drawn !== null) {   // drawn: the kernel may now send figures computed ahead
        ready = true;
        model.send({type: "ready"});
      }
    }
    const onChange = () => { div.dataset.receivedAt = performance.now().toFixed(1); draw(); };
    const onKnob = () => {
      const key = currentKey();
      const hit = key !== null && key !== shownKey ? kept.get(key) : undefined;
      if (hit === undefined) return;
      local = {fig: hit.figure, knobs: hit.knobs, key, local: true};
      div.dataset.receivedAt = performance.now().toFixed(1);
      draw();
    };
    const onMsg = (msg) => {
      if (!msg || msg.type !== "ahead") return;
      let fig = msg.figure;
      if (fig === null) {   // the same as the figure at the positions it was computed around
        const base = kept.get(keyOf(msg.same_as));
        if (base === undefined) return;
        fig = base.figure;
      }
      keep(keyOf(msg.state), fig, msg.knobs);
    };
    model.on("change:serial", onChange);
    model.on("msg:custom", onMsg);
    const ids = model.get("controls") || [];
    Promise.all(ids.map((id) => model.widget_manager.get_model(id))).then((ms) => {
      if (gone) return;
      knobs = ms;
      for (const m of knobs) m.on("change:value change:index", onKnob);
    }).catch(() => { knobs = []; });
    draw();
    return () => {
      gone = true;
      model.off("change:serial", onChange);
      model.off("msg:custom", onMsg);
      for (const m of knobs) m.off("change:value change:index", onKnob);
      if (window.Plotly) window.Plotly.purge(div);
    };
  }
};
"""


class FigureView(anywidget.AnyWidget):
    """A plotly figure in the page, redrawn in place with ``Plotly.react`` when :meth:`show` sends a new one.

    ``figure`` is the figure's JSON (a dict, as :func:`kllab.ui.plots.mime_bundle` gives it),
    ``knobs`` the knob values it was computed at, ``state`` the knobs' positions (see :meth:`show`) and
    ``serial`` counts the figures sent. ``controls`` lists the model ids of the knob widgets.

    The page keeps the figures it was sent, by knob positions: those on show, and those :meth:`ahead`
    sends once the page has drawn (figures computed for positions the reader may move to next). When the
    reader moves a knob to a kept position, the page draws that figure at once, without waiting for the
    kernel; the kernel's answer, the same figure, is then not drawn again.

    For the benchmarks, the page marks the figure's ``<div>`` with ``data-knobs`` and ``data-serial`` once
    it is drawn; with when its last figure arrived (``data-received-at``, the page's ``performance.now()``),
    how long ``Plotly.react`` took (``data-draw-ms``) and when it ended (``data-drawn-at``; the last 16 such
    times in ``data-drawn-log``, counting only draws that changed the figure); and
    ``data-local-draws``, the moves drawn from what the page kept.
    """

    _esm = _ESM
    figure = traitlets.Dict().tag(sync=True)
    knobs = traitlets.Dict().tag(sync=True)
    state = traitlets.List().tag(sync=True)
    controls = traitlets.List(traitlets.Unicode()).tag(sync=True)
    serial = traitlets.Int(0).tag(sync=True)

    def __init__(self, figure: dict, knobs: dict | None = None, *, state: Sequence = (), controls: Sequence[str] = (),
                 on_ready: Callable[[FigureView], None] | None = None, **kwargs):
        super().__init__(figure=figure, knobs=dict(knobs or {}), state=list(state), controls=list(controls),
                         **kwargs)
        self.ready = False  # the page drew a figure: figures computed ahead may be sent
        self._on_ready = on_ready
        self.on_msg(self._on_custom)

    def show(self, figure: dict, knobs: dict, state: Sequence = ()) -> None:
        """Send a figure, the knob values it shows and their positions (``()``: a partial figure, such as a
        training's intermediate one, which the page does not keep), in one message (traitlets sends the figure
        only if it changed)."""
        with self.hold_sync():
            self.figure = figure
            self.knobs = dict(knobs)
            self.state = list(state)
            self.serial += 1

    def ahead(self, figure: dict | None, knobs: dict, state: Sequence, same_as: Sequence = ()) -> None:
        """Send the page a figure computed ahead, for knob values and positions not on show; ``None``: the
        same figure as the one at the positions ``same_as`` (which the page was sent before). Nothing is
        sent before the page has drawn."""
        if self.ready:
            self.send({"type": "ahead", "figure": figure, "knobs": dict(knobs), "state": list(state),
                       "same_as": list(same_as)})

    def _on_custom(self, _widget, content, _buffers) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "need-plotly.js":
            from plotly.offline import get_plotlyjs

            self.send({"type": "plotly.js", "source": get_plotlyjs()})
        elif content.get("type") == "ready":
            self.ready = True
            if self._on_ready is not None:
                self._on_ready(self)


def plotly_loader() -> W.Output:
    """A hidden ``Output`` holding an empty plotly figure: it makes the page's plotly renderer load
    plotly.js (once per page), which every :class:`FigureView` then uses."""
    bundle = {"application/vnd.plotly.v1+json": {"data": [], "layout": {"height": 10, "meta": LOADER_META}}}
    return W.Output(outputs=({"output_type": "display_data", "data": bundle, "metadata": {}},),
                    layout=W.Layout(display="none"))
