/* kllab-plotly: draws plotly figures (application/vnd.plotly.v1+json outputs) in kllab's Voila dashboards.

Voila starts a page only once every extension's module has loaded. plotly's own extension (jupyterlab-plotly)
carries all of plotly.js in its module: 4.8 MB that a cold page fetched, and evaluated when it drew the first
figure, on the page's one main thread. kllab's Voila configuration (voila.json) leaves that extension off the
page, and this one draws the figures instead, with plotly.js's cartesian bundle (plotly-cartesian.min.js,
1.5 MB, from the npm package plotly.js-cartesian-dist-min; MIT, see plotly-cartesian.LICENSE). It has every
trace type kllab's notebooks draw, and it loads and evaluates in about a third of the time.

This module starts at once. It loads plotly.js when the page renders its first plotly output (the hidden,
empty one in the page's header, see the kllab Voila template), while the kernel runs the notebook's first
cells. kllab's figure widgets (kllab.ui.figure_view) draw with the same plotly.js, through window.kllabPlotly.
A figure with a trace type that the bundle lacks (which plotly.js would draw as a scatter) shows a one-line
error instead.

Where the page lists jupyterlab-plotly itself (JupyterLab, or Voila without kllab's configuration), this
extension registers nothing: plotly's renderer draws the figures.

The file is a module federation container, written by hand (https://webpack.js.org/concepts/module-federation/):
JupyterLab's and Voila's loader calls init(shareScope) with the page's shared modules, then
get("./mimeExtension"), and registers the renderer factory that module's default export lists. */
var _JUPYTERLAB = window._JUPYTERLAB = window._JUPYTERLAB || {};
_JUPYTERLAB["kllab-plotly"] = (function () {
  "use strict";
  const NAME = "kllab-plotly";
  const MIME = "application/vnd.plotly.v1+json";
  const BUNDLE = "static/plotly-cartesian.min.js";
  const LOADER_META = "kllab-plotly-loader";  // kllab.ui.figure_view.LOADER_META: loads plotly.js, draws nothing
  const HEIGHT = 360;  // a figure without a height gets jupyterlab-plotly's default
  let scope = null;

  function pageConfig() {
    try {
      return JSON.parse(document.getElementById("jupyter-config-data").textContent);
    } catch (err) {
      return {};
    }
  }

  function newest(versions) {  // the highest of a shared module's versions ("2.10.0" > "2.9.1")
    const parts = (v) => v.split(/[.+-]/).map((x) => (isNaN(+x) ? 0 : +x));
    return Object.keys(versions).sort((a, b) => {
      const pa = parts(a), pb = parts(b);
      for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
        if ((pa[i] || 0) !== (pb[i] || 0)) return (pa[i] || 0) - (pb[i] || 0);
      }
      return 0;
    }).pop();
  }

  async function shared(name) {  // a module the page shares with its extensions, such as @lumino/widgets
    const versions = scope && scope[name];
    if (!versions || !Object.keys(versions).length) throw new Error(`${NAME}: the page shares no ${name}`);
    const factory = await versions[newest(versions)].get();
    return factory();
  }

  let loading = null;  // one load of plotly.js per page
  function load() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (loading) return loading;
    loading = new Promise((resolve, reject) => {
      const base = pageConfig().fullLabextensionsUrl || "labextensions";
      const s = document.createElement("script");
      s.src = `${base}/${NAME}/${BUNDLE}`;
      s.async = true;
      s.onload = () => (window.Plotly ? resolve(window.Plotly) : reject(new Error(`${s.src} set no window.Plotly`)));
      s.onerror = () => reject(new Error(`${NAME}: could not load ${s.src}`));
      document.head.appendChild(s);
    });
    loading.catch(() => { loading = null; });  // the next figure tries again
    return loading;
  }

  // The trace types of `data` that the drawn figure in `div` does not have: plotly.js draws a trace of a type
  // it does not know as a scatter.
  function unknownTraces(div, data) {
    const full = div._fullData || [];
    const types = new Set();
    (data || []).forEach((trace, i) => {
      const want = (trace && trace.type) || "scatter";
      const got = full.find((t) => t.index === i);
      if (got && got.type !== want) types.add(want);
    });
    return Array.from(types);
  }

  function unknownMessage(types) {
    return `This figure has trace types (${types.join(", ")}) that kllab's dashboards cannot draw: ` +
      `they load plotly.js's cartesian bundle (kllab/harness/jupyter/labextensions/${NAME}).`;
  }

  window.kllabPlotly = { load, unknownTraces, unknownMessage };

  async function mimeExtension() {
    const listed = (pageConfig().federated_extensions || []).some((e) => e.name === "jupyterlab-plotly");
    if (listed) return [];  // plotly's own renderer is on the page
    const { Widget } = await shared("@lumino/widgets");

    class RenderedPlotly extends Widget {
      constructor(options) {
        super();
        this.addClass("kl-plotly");
        this._mimeType = options.mimeType;
      }

      async renderModel(model) {
        const fig = model.data[this._mimeType] || {};
        const layout = Object.assign({}, fig.layout || {});
        const Plotly = await load();
        if (this.isDisposed || layout.meta === LOADER_META) return;
        if (!layout.height) layout.height = HEIGHT;
        const config = Object.assign({ responsive: true, displaylogo: false }, fig.config || {});
        await Plotly.react(this.node, fig.data || [], layout, config);
        const unknown = unknownTraces(this.node, fig.data);
        if (unknown.length) {
          Plotly.purge(this.node);
          this.node.classList.remove("js-plotly-plot");
          const line = document.createElement("div");
          line.className = "kl-figure-error";
          line.textContent = unknownMessage(unknown);
          this.node.replaceChildren(line);
        }
      }

      _resize() {
        if (window.Plotly && this.node._fullLayout && this.isVisible) window.Plotly.Plots.resize(this.node);
      }

      onAfterShow(msg) { this._resize(); }

      onResize(msg) { this._resize(); }

      dispose() {
        if (this.isDisposed) return;
        if (window.Plotly) window.Plotly.purge(this.node);
        super.dispose();
      }
    }

    return [{
      id: `${NAME}:renderer`,
      description: "plotly figures, drawn with plotly.js's cartesian bundle",
      rendererFactory: {
        safe: true,
        mimeTypes: [MIME],
        defaultRank: 0,
        createRenderer: (options) => new RenderedPlotly(options),
      },
      rank: 0,
      dataType: "json",
    }];
  }

  return {
    init(shareScope) { scope = shareScope; },
    get(module) {
      if (module !== "./mimeExtension") return Promise.reject(new Error(`${NAME} has no module ${module}`));
      return mimeExtension().then((exports) => () => ({ __esModule: true, default: exports }));
    },
  };
})();
