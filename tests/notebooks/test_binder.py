"""A Binder rehearsal: binder/postBuild into a fresh HOME, Jupyter Server started as Binder starts it, and the
README's two Binder links opened in Chromium.

Binder (repo2docker) builds ``binder/environment.yml`` (test_environment.py checks that it asks for what
pyproject.toml asks for), runs ``binder/postBuild`` from the repository root, then starts a Jupyter
Server under a ``/user/<name>/`` base URL with a token; the README's links open
``lab/tree/notebooks/index.ipynb`` and ``voila/render/notebooks/index.ipynb`` under it. Here postBuild runs
for real against a temporary ``HOME`` (its ``pip install -e .`` as a dry run: kllab is installed already,
and reinstalling it under the other tests' feet would race them).
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser import (JS_DRAWN, browser, close_page, fingerprint, open_dashboard, panel, panel_controls, wait_for_update,
                     wait_until)

from kllab.harness.dashboard import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
BASE = "/user/kllab-rehearsal/"
TOKEN = "rehearsal-token"


def _readme_paths() -> list[str]:
    return re.findall(r"mybinder\.org/v2/gh/[^?\s)]+\?urlpath=([^\s)&\"]+)", (ROOT / "README.md").read_text())


@pytest.fixture(scope="module")
def binder(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(HOME=str(home), PIP_DRY_RUN="1", PIP_NO_BUILD_ISOLATION="off", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    post = subprocess.run(["bash", str(ROOT / "binder" / "postBuild")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert post.returncode == 0, post.stdout + post.stderr
    assert "Would install kllab" in post.stdout, post.stdout  # the install line resolves
    for copied in (".jupyter/voila.json", ".jupyter/jupyter_server_config.json",
                   ".local/share/jupyter/voila/templates/kllab", ".local/share/jupyter/labextensions/kllab-plotly"):
        assert (home / copied).exists(), copied
    env.pop("PIP_DRY_RUN"), env.pop("PIP_NO_BUILD_ISOLATION")
    port = free_port()
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
                             "--ServerApp.ip=127.0.0.1", "--allow-root", f"--ServerApp.base_url={BASE}",
                             f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={ROOT}"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, timeout=90)
        yield f"http://127.0.0.1:{port}{BASE}", home
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _kernels(server: str) -> list:
    with urllib.request.urlopen(f"{server}api/kernels?token={TOKEN}", timeout=10) as r:
        return json.loads(r.read())


def test_readme_links_are_the_rehearsed_paths():
    assert _readme_paths() == ["lab/tree/notebooks/index.ipynb", "voila/render/notebooks/index.ipynb"]


def test_jupyterlab_link_opens_the_gallery_notebook(binder):
    server, _ = binder
    with browser() as b:
        page = b.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"{server}{_readme_paths()[0]}?token={TOKEN}", timeout=120_000)
        try:
            page.locator(".jp-NotebookPanel .jp-MarkdownCell h1").first.wait_for(timeout=120_000)
        finally:
            page.screenshot(path=str(ROOT / "build" / "screenshots" / "binder-lab.png"))
        heading = page.locator(".jp-NotebookPanel .jp-MarkdownCell h1").first.inner_text()
        assert heading.startswith("kllab: divergences in machine learning"), heading
        assert page.locator(".jp-NotebookPanel .jp-CodeCell").count() >= 1


def test_dashboard_link_renders_the_gallery_and_a_paper_answers_a_knob(binder):
    server, _ = binder
    running = {k["id"] for k in _kernels(server)}  # the JupyterLab test may have left its notebook's kernel
    with browser() as b:
        page = b.new_page(viewport={"width": 1300, "height": 900})
        start = time.monotonic()
        page.goto(f"{server}{_readme_paths()[1]}?token={TOKEN}", timeout=120_000)
        card = page.locator('.kl-card[data-id="P37"] a').first
        card.wait_for(timeout=120_000)
        print(f"gallery dashboard on the rehearsed Binder: cards after {time.monotonic() - start:.1f} s")
        href = card.get_attribute("href")
        first = open_dashboard(page, page.url.split("index.ipynb")[0] + href, timeout=180)
        print(f"P37's dashboard opened from the gallery: first figure after {first:.1f} s (cold)")
        before, drawn = panel(page)["updates"], fingerprint(page)
        toggles, _ = panel_controls(page)
        toggles.first.locator("button:not(.mod-active)").first.click()
        state = wait_for_update(page, before, timeout=60)
        assert state["errors"] == 0
        assert wait_until(lambda: fingerprint(page) != drawn, 30), "the knob moved no figure"
        assert page.evaluate(f"() => Array.from(document.querySelectorAll('.js-plotly-plot')).filter({JS_DRAWN}).length") > 0
        opened = {k["id"] for k in _kernels(server)} - running
        assert opened, "the dashboard runs no kernel"
        close_page(page)
    deadline = time.monotonic() + 60
    while opened & {k["id"] for k in _kernels(server)} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not opened & {k["id"] for k in _kernels(server)}, "the dashboard's kernels outlived their closed tab"
