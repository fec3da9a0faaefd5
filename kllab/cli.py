"""The ``kllab`` command: ``kllab list``, ``kllab run``, ``kllab strip``, ``kllab dashboard``."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from . import catalog

__all__ = ["main"]


def _cmd_list(args: argparse.Namespace) -> int:
    letters = {"direction": "D", "temperature": "T", "width": "W"}
    print(f"{'id':<8}{'year':<6}{'status':<10}{'knobs':<7}title")
    for e in catalog.entries():
        knobs = " ".join(letters[k] for k in ("direction", "temperature", "width") if k in e.knobs)
        title = e.title if not e.short or e.title.startswith(e.short) else f"{e.short}: {e.title}"
        print(f"{e.id:<8}{e.year or '':<6}{e.status:<10}{knobs:<7}{textwrap.shorten(title, 80)}")
    done = sum(1 for e in catalog.papers() if e.notebook)
    print(f"\nknobs: D direction, T temperature, W width. {done} of {len(catalog.papers())} papers have a "
          f"notebook; run one with `kllab run P13`.")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import parse_value, run

    params = {}
    for name, value in args.param or []:
        params[name] = parse_value(value)
    try:
        results = run(args.notebooks, fast=args.fast, parameters=params, out_dir=args.out)
    except ValueError as err:
        print(f"kllab run: {err}", file=sys.stderr)
        return 2
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"\n{len(failed)} of {len(results)} notebook(s) failed:", file=sys.stderr)
        for r in failed:
            print(f"  {r.target.label} ({r.target.path.name}): {r.error}", file=sys.stderr)
        return 1
    return 0


def _cmd_strip(args: argparse.Namespace) -> int:
    import nbformat

    from .nbtools import check_lines, strip

    for name in args.notebooks:
        path = Path(name)
        if args.execute:
            import papermill

            print(f"executing {path} with its defaults ...")
            papermill.execute_notebook(str(path), str(path), kernel_name="python3", progress_bar=False,
                                       cwd=str(path.parent))
        nb = strip(nbformat.read(path, as_version=4))
        nbformat.write(nb, path)
        lines = check_lines(nb)
        print(f"{path}: {path.stat().st_size // 1024} KB, check: {lines[0] if lines else '(no check output)'}")
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import serve

    try:
        return serve(args.notebook, port=args.port, open_browser=not args.no_browser)
    except (ValueError, RuntimeError) as err:
        print(f"kllab dashboard: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kllab", description="Divergences in machine learning, one notebook per paper.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the catalog: every paper and whether it has a notebook")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("run", help="execute notebooks headless (papermill) and print their check lines")
    p.add_argument("notebooks", nargs="*", metavar="PAPER_OR_NOTEBOOK",
                   help="catalog ids (P13), slugs or .ipynb paths; default: every notebook")
    p.add_argument("--fast", action="store_true", help="small sizes (FAST=True), seconds per notebook")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="set a notebook parameter; VALUE is read as a Python literal where it parses")
    p.add_argument("--out", default="build/run", help="output folder (default: build/run)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("strip", help="put notebooks in committed form (outputs only in check cells)")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    p.add_argument("--execute", action="store_true", help="run with the defaults first, to refresh the check output")
    p.set_defaults(func=_cmd_strip)

    p = sub.add_parser("dashboard", help="serve the notebooks as Voila dashboards on 127.0.0.1")
    p.add_argument("notebook", nargs="?", metavar="PAPER_OR_NOTEBOOK",
                   help="one catalog id, slug or notebook; default: the gallery (the whole notebooks folder)")
    p.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="only print the URL")
    p.set_defaults(func=_cmd_dashboard)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `kllab list | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
