"""``kllab dashboard``: serve the notebooks as Voila dashboards on this machine.

Voila runs with the configuration in ``kllab/harness/voila.json``: code cells hidden, tracebacks kept out
of the page (they go to the server log), cells shown as they finish (progressive rendering), only
the ``notebooks/`` folder served, and the kernel of a page that is gone (no connection left) shut
down after two idle minutes; a page closed normally shuts its kernel down at once (the ``kllab``
template in :data:`DATA_DIR` makes that work). Pages take their kernels from a pool of one kernel that
has done its imports already (:mod:`kllab.harness.warm`). Their plotly figures are drawn by kllab's
renderer in :data:`DATA_DIR` (``labextensions/kllab-plotly``), with plotly.js's cartesian bundle, in place
of plotly's own extension, which ``voila.json`` leaves off the pages.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import webbrowser
from pathlib import Path

from . import catalog

__all__ = ["CONFIG_DIR", "DATA_DIR", "PLOTLY_BUNDLE", "plotly_bundle_version", "voila_command", "voila_env",
           "free_port", "serve"]

CONFIG_DIR = Path(__file__).resolve().parent
"""Where ``voila.json`` lives; passed to Voila as its only config path."""

DATA_DIR = CONFIG_DIR / "jupyter"
"""A Jupyter data directory holding kllab's Voila template (``voila/templates/kllab``: Voila's lab
template plus the cookie that lets a closed page shut its kernel down, see its ``index.html.j2``) and
kllab's plotly renderer for the pages (``labextensions/kllab-plotly``, see its ``static/remoteEntry.js``)."""

PLOTLY_BUNDLE = DATA_DIR / "labextensions" / "kllab-plotly" / "static" / "plotly-cartesian.min.js"
"""plotly.js's cartesian bundle (npm's ``plotly.js-cartesian-dist-min``), which draws the pages' figures."""


def plotly_bundle_version() -> str:
    """The version of :data:`PLOTLY_BUNDLE`, from its header (``"4.1.1"``)."""
    with open(PLOTLY_BUNDLE, encoding="utf-8") as f:
        found = re.search(r"plotly\.js \(cartesian - minified\) v(\S+)", f.read(200))
    if found is None:
        raise RuntimeError(f"{PLOTLY_BUNDLE} does not start with plotly.js's cartesian bundle header")
    return found.group(1)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def voila_command(port: int, notebook: str | None = None, *, preheat: bool = False,
                  root: Path | None = None) -> list[str]:
    """The Voila command line for the whole notebooks folder, or for one notebook in it.

    With ``preheat``, Voila keeps one kernel per notebook that has already run it, so a page
    opens at once (each costs a kernel's memory, about 0.5 GB); cells then appear all together
    instead of progressively. ``root`` serves another folder than ``notebooks/`` (for tests).
    """
    root = catalog.NOTEBOOK_DIR if root is None else Path(root)
    target = [str(root / notebook)] if notebook else [str(root)]
    # port_retries=0: on a taken port Voila exits instead of moving to another one the caller does not know
    cmd = [sys.executable, "-m", "voila", *target, f"--port={port}", "--Voila.port_retries=0", "--no-browser",
           "--Voila.config_file_paths", str(CONFIG_DIR), f"--Voila.root_dir={root}"]
    if preheat:
        # Voila's preheated kernel replaces the warm pool (which would hold one more kernel for nothing)
        cmd += ["--preheat_kernel=True", "--pool_size=1", "--progressive_rendering=False",
                "--WarmKernelManager.warm_pool_size=0"]
    return cmd


def voila_env() -> dict[str, str]:
    """The environment to run Voila in: this one, with :data:`DATA_DIR` first on ``JUPYTER_PATH``
    so that Voila finds the ``kllab`` template that ``voila.json`` names, and kllab's plotly renderer."""
    env = dict(os.environ)
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(DATA_DIR), env.get("JUPYTER_PATH")) if p)
    return env


def _resolve(key: str | None) -> str | None:
    if key is None:
        return None
    if key.endswith(".ipynb"):
        name = Path(key).name
        if not (catalog.NOTEBOOK_DIR / name).exists():
            raise ValueError(f"notebook must be a file in {catalog.NOTEBOOK_DIR}; got {key!r}")
        return name
    e = catalog.find(key)
    if not e.notebook:
        raise ValueError(f"{e.id} ({e.short or e.title}) has no notebook yet; see `kllab list`")
    return e.notebook


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Block until Voila answers HTTP on ``port``; raise if ``proc`` exits first or time runs out.

    Something else may hold the port (a kernel's ZeroMQ socket took it between :func:`free_port` and
    Voila's start): it does not speak HTTP, Voila exits (``port_retries=0``), and this raises.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise PortTaken(f"Voila exited with status {proc.returncode} before serving on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
                if s.recv(5) == b"HTTP/":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"Voila did not answer on port {port} within {timeout:.0f} s")


class PortTaken(RuntimeError):
    """Voila stopped before serving, most often because its port was taken."""


def start_voila(port: int | None = None, notebook: str | None = None, *, preheat: bool = False,
                root: Path | None = None, stdout=None, extra=(), timeout: float = 60.0
                ) -> tuple[subprocess.Popen, int]:
    """Start Voila and wait until it serves; returns the process and its port.

    Without ``port`` a free one is picked, and picked again (up to five times) if another process
    takes it before Voila binds it.
    """
    for attempt in range(1 if port else 5):
        p = port or free_port()
        proc = subprocess.Popen([*voila_command(p, notebook, preheat=preheat, root=root), *extra], env=voila_env(),
                                stdout=stdout, stderr=subprocess.STDOUT if stdout else None)
        try:
            wait_for_port(p, proc, timeout=timeout)
            return proc, p
        except PortTaken:
            if port or attempt == 4:
                raise
        except BaseException:
            proc.kill()
            raise
    raise AssertionError("unreachable")


def serve(key: str | None = None, *, port: int | None = None, open_browser: bool = True,
          preheat: bool = False) -> int:
    """Start Voila, print the URL, and serve until Ctrl-C. Returns Voila's exit status."""
    notebook = _resolve(key)
    if preheat and notebook is None:
        n = sum(1 for e in catalog.entries() if e.notebook)
        raise ValueError(f"--preheat needs one notebook: it keeps a kernel per notebook (about 0.5 GB each, "
                         f"{n} for the gallery); e.g. kllab dashboard P37 --preheat")
    # A SIGTERM (a service manager, a test) must stop Voila too: turn it into SystemExit so that
    # the finally clause below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    proc, port = start_voila(port, notebook, preheat=preheat)
    try:
        base = f"http://127.0.0.1:{port}/"
        if notebook:  # Voila serves a single notebook at its root
            url, more = base, "Ctrl-C stops"
        else:
            url, more = base + "voila/render/index.ipynb", f"all notebooks: {base}voila/tree; Ctrl-C stops"
        print(f"kllab dashboard: serving {notebook or 'the gallery'} at\n  {url}\n({more})", flush=True)
        if open_browser:
            webbrowser.open(url)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
