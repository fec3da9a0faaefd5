"""The ``kllab`` command: ``list``, ``new``, ``run``, ``strip``, ``dashboard``, ``sweep``, ``plot``, ``handout``, ``site``."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from . import catalog

__all__ = ["main"]


def _cmd_list(args: argparse.Namespace) -> int:
    if args.papers:
        return _list_papers(args.papers)
    letters = {"direction": "D", "temperature": "T", "width": "W"}
    print(f"{'id':<8}{'year':<6}{'status':<10}{'knobs':<7}title")
    for e in catalog.entries():
        knobs = " ".join(letters[k] for k in ("direction", "temperature", "width") if k in e.knobs)
        title = e.title if not e.short or e.title.startswith(e.short) else f"{e.short}: {e.title}"
        print(f"{e.id:<8}{e.year or '':<6}{e.status:<10}{knobs:<7}{textwrap.shorten(title, 80)}")
    done = sum(1 for e in catalog.papers() if e.notebook)
    print(f"\nknobs: D direction, T temperature, W width. {done} of {len(catalog.papers())} papers have a "
          f"notebook; run one with `kllab run P13`; `kllab list P13` shows its knobs and their ranges.")
    return 0


def _list_papers(keys: list[str]) -> int:
    """One block per paper: its knobs, the parameter that plays each, the accepted range and the meaning."""
    from .ranges import Ranges

    try:
        entries = [catalog.find(k) for k in keys]
    except ValueError as err:
        print(f"kllab list: {err}", file=sys.stderr)
        return 2
    for e in entries:
        print(f"{e.id} · {e.title} ({e.year or ''}) · {e.notebook or 'no notebook yet'}")
        ranges = Ranges(e)
        knob_of = {name: knob for knob, name in e.knobs.items()}
        for r in ranges:
            knob = knob_of.get(r.name, "")
            print(f"  {r.name:<16}{knob:<13}{r.describe()}")
            if knob in e.knob_meaning:
                print(f"  {'':<29}{textwrap.shorten(e.knob_meaning[knob], 90)}")
        for knob, name in e.knobs.items():
            if name not in ranges:
                print(f"  {name:<16}{knob:<13}(no range yet: the notebook is not written)")
        print()
    return 0


def _parameters(items: list[str] | None, command: str) -> dict:
    """``-p NAME=VALUE`` options as a dict (values are Python literals where they parse)."""
    from .sweep import parse_assignment

    params = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"-p must be NAME=VALUE in one word; got {item!r} (write -p {item}=VALUE, "
                             f"not -p {item} VALUE)")
        name, value = parse_assignment(item)
        params[name] = value
    return params


def _workers(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise ValueError(f"--workers must be an integer >= 1; got {text!r}")
    return value


def _cmd_run(args: argparse.Namespace) -> int:
    from .run import run

    try:
        params = _parameters(args.param, "run")
        results = run(args.notebooks, fast=args.fast, parameters=params, out_dir=args.out, png=args.png,
                      workers=_workers(args.workers), fresh_kernels=args.fresh_kernels, timeout=args.timeout)
    except ValueError as err:
        print(f"kllab run: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"\n{len(failed)} of {len(results)} notebook(s) failed:", file=sys.stderr)
        for r in failed:
            print(f"  {r.target.label} ({r.target.path.name}): {r.error}", file=sys.stderr)
        return 1
    return 0


def _cmd_strip(args: argparse.Namespace) -> int:
    import nbformat

    from . import engine
    from .nbtools import check_lines, strip

    status = 0
    for name in args.notebooks:
        path = Path(name)
        if not path.exists():
            print(f"kllab strip: notebook {name!r} does not exist", file=sys.stderr)
            return 2
        if args.execute:
            print(f"executing {path} with its defaults ...", flush=True)
            result = engine.run_point(engine.task_for(path))
            if result["status"] != "ok":  # the source notebook is left as it was
                print(f"kllab strip: {path} failed, left unchanged: {result['error']}", file=sys.stderr)
                status = 1
                continue
            nb = nbformat.reads(result["notebook"], as_version=4)
        else:
            nb = nbformat.read(path, as_version=4)
        nb = strip(nb)
        nbformat.write(nb, path)
        lines = check_lines(nb)
        print(f"{path}: {path.stat().st_size // 1024} KB, check: {lines[0] if lines else '(no check output)'}")
    return status


def _cmd_new(args: argparse.Namespace) -> int:
    from .scaffold import PLACEHOLDER, new

    try:
        path = new(args.paper)
    except ValueError as err:
        print(f"kllab new: {err}", file=sys.stderr)
        return 2
    entry = catalog.find(args.paper)
    print(f"kllab new: wrote {path} and set notebook = \"{path.name}\" for {entry.id} in the catalog.\n"
          f"Fill in every {PLACEHOLDER} mark (its check cell fails until then), then "
          f"`kllab strip --execute {path}` and `pytest -k {entry.id}`.")
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import serve

    try:
        return serve(args.notebook, port=args.port, open_browser=not args.no_browser, preheat=args.preheat)
    except (ValueError, RuntimeError) as err:
        print(f"kllab dashboard: {err}", file=sys.stderr)
        return 2


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import parse_grid, sweep

    try:
        grid = parse_grid(args.grid or [])
        fixed = _parameters(args.param, "sweep")
        table = sweep(args.notebook, grid, fixed, out=args.out, workers=_workers(args.workers), dask=args.dask,
                      force=args.force, fresh_kernels=args.fresh_kernels, timeout=args.timeout, plot=args.plot or [])
    except ValueError as err:
        print(f"kllab sweep: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print()
    print(table.format(width=110))
    if table.failed:
        print(f"\n{len(table.failed)} of {len(table)} point(s) failed:", file=sys.stderr)
        for row in table.failed:
            point = " ".join(f"{k}={row[k]!r}" for k in table.grid)
            print(f"  {point}: {row['error']}", file=sys.stderr)
    return min(len(table.failed), 100)


def _cmd_plot(args: argparse.Namespace) -> int:
    from .sweep import load

    try:
        table = load(args.folder)
        metrics = args.metrics or [m for m in table.metrics
                                   if any(isinstance(v, (int, float)) for v in table.column(m))]
        if args.out and len(metrics) != 1:
            raise ValueError(f"--out needs exactly one METRIC; got {len(metrics)}")
        for metric in metrics:
            path = Path(args.out) if args.out else Path(args.folder) / f"{metric}.html"
            table.figure(metric).write_html(path, include_plotlyjs="directory")
            print(f"figure: {path}")
    except ValueError as err:
        print(f"kllab plot: {err}", file=sys.stderr)
        return 2
    return 0


def _cmd_handout(args: argparse.Namespace) -> int:
    from .handout import handout

    try:
        handout(args.notebooks, args.out, checks=not args.no_checks, force=args.force, run_dir=args.run_dir,
                execute=args.execute)
    except ValueError as err:
        print(f"kllab handout: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _cmd_site(args: argparse.Namespace) -> int:
    from .site import build, serve

    try:
        index = build(args.run_dir, args.out, execute=args.execute)
        if args.serve:
            return serve(index.parent, port=args.port)
    except ValueError as err:
        print(f"kllab site: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"kllab site: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kllab", description="Divergences in machine learning, one notebook per paper.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the catalog: every paper and whether it has a notebook")
    p.add_argument("papers", nargs="*", metavar="PAPER",
                   help="catalog ids (P13) or slugs: show their knobs, the parameter of each and its accepted range")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("run", help="execute notebooks headless (papermill) and print their check lines")
    p.add_argument("notebooks", nargs="*", metavar="PAPER_OR_NOTEBOOK",
                   help="catalog ids (P13), slugs or .ipynb paths; default: every notebook")
    p.add_argument("--fast", action="store_true", help="small sizes (FAST=True), seconds per notebook")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="set a notebook parameter, e.g. -p BETA=0.5; VALUE is read as a Python literal where it parses")
    p.add_argument("--out", default="build/run", help="output folder (default: build/run)")
    p.add_argument("--png", action="store_true", help="also write every figure as a PNG (needs Chrome or Chromium)")
    p.add_argument("--workers", default=None, metavar="N",
                   help="local workers, each with its own kept kernel (default: one per core)")
    p.add_argument("--fresh-kernels", action="store_true",
                   help="start a new kernel for every notebook (stock papermill) instead of kept, reset ones")
    p.add_argument("--timeout", type=int, default=600, metavar="SECONDS", help="time allowed per cell (default 600)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("strip", help="put notebooks in committed form (outputs only in check cells)")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    p.add_argument("--execute", action="store_true", help="run with the defaults first, to refresh the check output")
    p.set_defaults(func=_cmd_strip)

    p = sub.add_parser("new", help="scaffold the notebook of a catalog paper that has none yet",
                       description="Write notebooks/<slug>.ipynb for PAPER in the notebook contract's skeleton, with "
                                   "the catalog's knob names as parameters, and set the catalog's notebook field. "
                                   "Its check cell fails until it is written.")
    p.add_argument("paper", metavar="PAPER", help="a catalog id without a notebook, e.g. P02")
    p.set_defaults(func=_cmd_new)

    p = sub.add_parser("dashboard", help="serve the notebooks as Voila dashboards on 127.0.0.1")
    p.add_argument("notebook", nargs="?", metavar="PAPER_OR_NOTEBOOK",
                   help="one catalog id, slug or notebook; default: the gallery (the whole notebooks folder)")
    p.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="only print the URL")
    p.add_argument("--preheat", action="store_true",
                   help="keep one kernel per notebook ready, so pages open at once (about 0.5 GB each)")
    p.set_defaults(func=_cmd_dashboard)

    p = sub.add_parser("sweep", help="run one notebook over a grid of parameter values, in parallel, into one table",
                       description="Run NOTEBOOK once per point of the grid (the product of the --grid values), on "
                                   "local workers or a Dask cluster, and write DIR/results.csv (one row per point: "
                                   "parameters, status, error, seconds, recorded values) and DIR/notebooks/. Points "
                                   "already ok in DIR are skipped. Exit status: the number of failed points (at most "
                                   "100); 2 for a refused command line; 130 if interrupted.")
    p.add_argument("notebook", metavar="PAPER_OR_NOTEBOOK", help="a catalog id (P37), slug or .ipynb path")
    p.add_argument("--grid", action="append", metavar="NAME=V1,V2,...",
                   help="a parameter and its values (Python literals where they parse); repeat for a product")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="a parameter fixed for every point, e.g. -p FAST=True")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for results.csv, notebooks/ and figures")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", default=None, metavar="N",
                       help="local workers, each with its own kernel (default: one per core)")
    where.add_argument("--dask", metavar="ADDRESS", help="run on the dask.distributed scheduler at ADDRESS "
                       "(e.g. tcp://10.0.0.5:8786); its workers need kllab installed")
    p.add_argument("--force", action="store_true", help="run every point again, even those already ok in DIR")
    p.add_argument("--fresh-kernels", action="store_true",
                   help="start a new kernel for every point (default: one kept kernel per worker, reset between points)")
    p.add_argument("--timeout", type=int, default=600, metavar="SECONDS", help="time allowed per cell (default 600)")
    p.add_argument("--plot", action="append", metavar="METRIC",
                   help="write DIR/METRIC.html: METRIC against the first grid parameter (repeatable)")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("plot", help="figure of a sweep: a recorded quantity against the first grid parameter")
    p.add_argument("folder", metavar="DIR", help="a sweep's folder (with results.csv)")
    p.add_argument("metrics", nargs="*", metavar="METRIC", help="recorded quantities (default: every numeric one)")
    p.add_argument("--out", default=None, metavar="FILE", help="the HTML file (default DIR/METRIC.html)")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("handout", help="student notebooks without the solutions, and a solutions page for the lecturer",
                       description="Write DIR/students/<slug>.ipynb (each worked solution replaced by an empty answer "
                                   "cell; the exercises stay), DIR/solutions/<slug>.html (the executed notebook from "
                                   "`kllab run`, solutions shown) and DIR/kllab-handout.zip with both.")
    p.add_argument("notebooks", nargs="+", metavar="PAPER_OR_NOTEBOOK", help="catalog ids (P13), slugs or .ipynb paths")
    p.add_argument("--out", required=True, metavar="DIR", help="the handout's folder (new, or empty unless --force)")
    p.add_argument("--no-checks", action="store_true",
                   help="also take the check cell and the record cell out of the student notebooks")
    p.add_argument("--force", action="store_true", help="write into a non-empty DIR, replacing files of the same name")
    p.add_argument("--run-dir", default="build/run", metavar="DIR",
                   help="where `kllab run` wrote the executed notebooks (default: build/run)")
    p.add_argument("--execute", action="store_true",
                   help="run the notebooks that have no successful executed copy in --run-dir first")
    p.set_defaults(func=_cmd_handout)

    p = sub.add_parser("site", help="the course site: the executed notebooks as static pages (Sphinx), from `kllab run`",
                       description="Build a static site from the notebooks `kllab run` executed (nothing runs again): "
                                   "the gallery as its landing page, one page per notebook with its interactive "
                                   "figures, its check line, solutions collapsed and launch links, a conventions "
                                   "page, and offline search. Open OUT/index.html, or pass --serve.")
    p.add_argument("--run-dir", default="build/run", metavar="DIR",
                   help="where `kllab run` wrote the executed notebooks (default: build/run)")
    p.add_argument("--out", default="build/site", metavar="DIR", help="the site's folder (default: build/site)")
    p.add_argument("--execute", action="store_true", help="run every notebook first if --run-dir holds no run")
    p.add_argument("--serve", action="store_true", help="then serve the site on 127.0.0.1 until Ctrl-C")
    p.add_argument("--port", type=int, default=0, help="port for --serve (default: a free one)")
    p.set_defaults(func=_cmd_site)

    argv = sys.argv[1:] if argv is None else list(argv)
    for i, word in enumerate(argv[:-1]):  # `-p NAME VALUE`, the old form of `kllab run`: refuse it with the fix
        if word in ("-p", "--param") and "=" not in argv[i + 1] and argv[:1] in (["run"], ["sweep"]):
            value = argv[i + 2] if i + 2 < len(argv) and not argv[i + 2].startswith("-") else "VALUE"
            print(f"kllab {argv[0]}: -p must be NAME=VALUE in one word; got {argv[i + 1]!r} "
                  f"(write -p {argv[i + 1]}={value}, not -p {argv[i + 1]} {value})", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `kllab list | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
