"""The course site: the notebooks that ``kllab run`` executed, as a static site (Sphinx, MyST-NB, sphinx-book-theme).

Used by ``kllab site``. Nothing runs again: every page is an executed notebook from the run's folder
(``build/run``), with

* its check line as a badge (green ok, red failed with the error: a failed notebook keeps its page);
* a launch row: the notebook in JupyterLab on Binder, its dashboard on Binder, the notebook to download;
* its plotly figures interactive (zoom, hover) with no kernel: each figure's HTML rendering is stored
  next to its JSON, and ``plotly.min.js`` is loaded once for the whole site;
* its worked solutions collapsed (code cells tagged ``hide-input`` and the written "Solution" blocks),
  its ``remove-cell`` cells (the record cell) and papermill's injected-parameters cell absent;
* links to the other papers of its topic (the catalog's ``topic``).

The landing page is the gallery (one card per catalog entry with its check status); a conventions
page is built from the README's "Conventions" section; Sphinx's own search works offline.

Sphinx 9 with MyST-NB builds with no network; Jupyter Book 2 fetches its page template on the first
build, so it is not used here.
"""

from __future__ import annotations

import copy
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nbformat

from . import catalog
from . import run as runner

__all__ = ["BINDER", "build", "page_name", "prepare_notebook", "serve"]

BINDER = "https://mybinder.org/v2/gh/kllab/kllab/HEAD"
"""The repository on Binder: the README's two launch links start with it."""
REPO_ROOT = catalog.NOTEBOOK_DIR.parent
PLOTLY_JSON = runner.PLOTLY_JSON
MARKER = ".kllab-site"

_CONF = '''\
project = "kllab"
author = "kllab"
copyright = "kllab"
extensions = ["myst_nb"]
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath"]
html_theme = "sphinx_book_theme"
html_title = "kllab: divergences in machine learning"
html_static_path = ["_static"]
html_js_files = ["plotly.min.js"]
html_css_files = ["kllab.css"]
html_theme_options = {"show_toc_level": 2, "home_page_in_toc": True}
exclude_patterns = ["_build"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header", "misc.highlighting_failure"]
html_show_sourcelink = False
nb_merge_streams = True
'''

_CSS = """
.kl-badge{display:inline-block;padding:4px 10px;border-radius:4px;font-family:monospace;font-size:85%;
  margin:4px 0;white-space:normal}
.kl-badge.ok{background:#e6f4ea;border:1px solid #2e7d32;color:#1b5e20}
.kl-badge.failed{background:#fdecea;border:1px solid #c62828;color:#8e0000}
.kl-launch a{margin-right:1.2em}
.kl-cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:12px}
.kl-card{border:1px solid #ccc;border-radius:6px;padding:10px}
.kl-card.todo{opacity:.6}
.kl-card h4{margin:.2em 0;font-size:1rem}
.kl-card .kl-meta{font-size:80%;color:#555}
.kl-card .kl-status{font-size:80%;float:right}
.kl-card .kl-status.ok{color:#2e7d32}.kl-card .kl-status.failed{color:#c62828}
"""


def page_name(entry: catalog.Entry) -> str:
    """The page of an entry, relative to the site's root: ``p13-f-distill.html``."""
    return Path(entry.notebook).with_suffix(".html").name


def _plotly_html(fig: dict) -> str:
    import plotly.io as pio

    return pio.to_html(fig, include_plotlyjs=False, full_html=False, config={"responsive": True})


def _badge(result: dict | None) -> str:
    if result is None:
        return '<div class="kl-badge failed">not in the run: run <code>kllab run</code> to execute it</div>'
    if result.get("ok"):
        text = html.escape(result.get("check", ""))
        return f'<div class="kl-badge ok" title="check line">✔ {text}</div>'
    return f'<div class="kl-badge failed">✘ failed in the run: {html.escape(result.get("error", ""))}</div>'


def _run_note(result: dict | None) -> str:
    if not result:
        return ""
    params = result.get("parameters", {})
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if k != "INTERACTIVE")
    when = result.get("finished", "")
    return (f'<div class="kl-meta">executed by <code>kllab run</code>{" on " + html.escape(when) if when else ""}'
            f'{" with " + html.escape(shown) if shown else " at the defaults"}, in {result.get("seconds", "?")} s</div>')


def _launch(entry: catalog.Entry) -> str:
    nb = entry.notebook
    return ('<div class="kl-launch">'
            f'<a href="{BINDER}?urlpath=lab/tree/notebooks/{nb}" target="_blank">▶ open in JupyterLab on Binder</a>'
            f'<a href="{BINDER}?urlpath=voila/render/notebooks/{nb}" target="_blank">▶ open as a dashboard on Binder</a>'
            f'<a href="_downloads/{nb}" download>⬇ download the notebook</a></div>')


def _related(entry: catalog.Entry) -> str:
    others = [e for e in catalog.papers() if e.notebook and e.topic == entry.topic and e.id != entry.id]
    if not others:
        return ""
    links = "\n".join(f"* [{e.id} · {e.short or e.title}]({e.notebook})" for e in others)
    return f"## Related papers ({entry.topic})\n\n{links}\n"


def prepare_notebook(nb, entry: catalog.Entry, result: dict | None):
    """An executed notebook as a site page (a copy): badge and launch row under its title, figures with an
    HTML rendering, the injected-parameters cell out, links to the papers of the same topic at the end."""
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY_JSON in data:
                data["text/html"] = _plotly_html(data.pop(PLOTLY_JSON))
    head = nbformat.v4.new_markdown_cell(f"{_badge(result)}\n{_run_note(result)}\n{_launch(entry)}\n")
    at = next((i + 1 for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.lstrip().startswith("# ")), 0)
    nb.cells.insert(at, head)
    related = _related(entry)
    if related:
        nb.cells.append(nbformat.v4.new_markdown_cell(related))
    nb.metadata.pop("widgets", None)
    return nb


def _conventions() -> str:
    """The README's "Conventions" section (with its translation table), as a page of its own."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^## Conventions\n(.*?)(?=^## )", text, flags=re.S | re.M)
    if m is None:
        raise ValueError("README.md has no '## Conventions' section to build the conventions page from")
    body = re.sub(r"^### ", "## ", m.group(1), flags=re.M)
    return f"# Conventions\n{body}"


def _card(entry: catalog.Entry, result: dict | None) -> str:
    knobs = " · ".join(f"{k}: {html.escape(v)}" for k, v in entry.knobs.items())
    title = html.escape(entry.title)
    if entry.notebook:
        title = f'<a href="{page_name(entry)}">{title}</a>'
        if result is None:
            status = '<span class="kl-status">not run</span>'
        elif result.get("ok"):
            status = f'<span class="kl-status ok" title="{html.escape(result.get("check", ""))}">✔ check ok</span>'
        else:
            status = f'<span class="kl-status failed" title="{html.escape(result.get("error", ""))}">✘ failed</span>'
    else:
        status = '<span class="kl-status">not yet</span>'
    meta = " · ".join(x for x in (entry.id, str(entry.year or ""), entry.topic) if x)
    return (f'<div class="kl-card{"" if entry.notebook else " todo"}" data-id="{entry.id}">{status}'
            f'<h4>{title}</h4><div class="kl-meta">{html.escape(meta)}</div><div class="kl-meta">{knobs}</div></div>')


def _index(results: dict, pages: list[catalog.Entry]) -> str:
    ok = sum(1 for e in pages if (results.get(e.id) or {}).get("ok"))
    cards = "\n".join(_card(e, results.get(e.id)) for e in catalog.entries())
    toc = "\n".join(Path(e.notebook).stem for e in pages)
    return f"""# kllab: divergences in machine learning

One notebook per paper on the Kullback-Leibler divergence and its relatives, each reproducing the paper's
central idea at toy scale, with three knobs to move: direction, temperature and width. {len(pages)} notebooks;
{ok} passed their check in the run this site was built from. Each page is the executed notebook, with its figures
interactive and a link to open it live on Binder.

```{{raw}} html
<div class="kl-cards">
{cards}
</div>
```

```{{toctree}}
:hidden:
:maxdepth: 1

conventions
{toc}
```
"""


def _results(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / runner.RESULTS_FILE).read_text(encoding="utf-8"))["notebooks"]
    except (OSError, ValueError, KeyError):
        return {}


def build(run_dir: Path | str = "build/run", out_dir: Path | str = "build/site", *, execute: bool = False,
          echo: Callable[[str], None] = print) -> Path:
    """Build the site from the notebooks executed in ``run_dir`` into ``out_dir``; return its ``index.html``.

    Raises ``ValueError`` when ``run_dir`` holds no run (naming the command to run first), unless
    ``execute``, which runs every notebook into ``run_dir`` first.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    results = _results(run_dir)
    if not results:
        if not execute:
            raise ValueError(f"no run in {run_dir}/ to build the site from: run `kllab run` first "
                             f"(`kllab run --out {run_dir}` for this folder), or pass --execute")
        runner.run(out_dir=run_dir, echo=echo)
        results = _results(run_dir)
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MARKER).exists())):
        raise ValueError(f"--out {out_dir} exists and is not a site `kllab site` built; choose another folder "
                         f"(kllab site replaces its own output folder, and nothing else)")
    pages = [e for e in catalog.entries() if e.notebook]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kllab-site-") as tmp:
        src = Path(tmp)
        (src / "_static").mkdir()
        (src / "_downloads").mkdir()
        (src / "conf.py").write_text(_CONF, encoding="utf-8")
        (src / "_static" / "kllab.css").write_text(_CSS, encoding="utf-8")
        from plotly.offline import get_plotlyjs

        (src / "_static" / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
        (src / "conventions.md").write_text(_conventions(), encoding="utf-8")
        (src / "index.md").write_text(_index(results, pages), encoding="utf-8")
        for e in pages:
            executed = run_dir / e.notebook
            result = results.get(e.id)
            nb = nbformat.read(executed if executed.exists() else e.path, as_version=4)
            nbformat.write(prepare_notebook(nb, e, result), src / e.notebook)
            shutil.copy(e.path, src / "_downloads" / e.notebook)
        html_dir = src / "_build"
        proc = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-j", "auto", str(src),
                               str(html_dir)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"sphinx-build failed:\n{proc.stderr[-4000:]}")
        shutil.copytree(src / "_downloads", html_dir / "_downloads", dirs_exist_ok=True)
        if out_dir.exists():
            shutil.rmtree(out_dir)  # a site this command built (checked before the build)
        shutil.copytree(html_dir, out_dir, ignore=shutil.ignore_patterns(".doctrees", ".buildinfo"))
        (out_dir / MARKER).write_text("built by kllab site; `kllab site` replaces this folder\n", encoding="utf-8")
    seconds = time.perf_counter() - start
    failed = [e.id for e in pages if not (results.get(e.id) or {}).get("ok")]
    echo(f"site: {len(pages)} pages in {seconds:.1f} s"
         f"{'; not ok in the run: ' + ', '.join(failed) if failed else ''}; open {out_dir / 'index.html'}")
    return out_dir / "index.html"


def serve(folder: Path | str, port: int = 0) -> int:
    """Serve a built site on 127.0.0.1 (a free port by default) until Ctrl-C."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        print(f"kllab site: serving {folder} at http://127.0.0.1:{httpd.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0
