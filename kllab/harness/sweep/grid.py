"""A sweep's grid and fixed parameters: parsing the command line, checking them against the notebook."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..nbtools import parse_value
from ..ranges import check_parameters
from ..run import Target, catalog_entry, notebook_parameters

__all__ = ["parse_assignment", "parse_grid", "check_grid"]


def _split_values(text: str) -> list[str]:
    """Split on the commas that are outside brackets and quotes: ``"1,[2,3]"`` -> ``["1", "[2,3]"]``."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_assignment(text: str, option: str = "-p") -> tuple[str, object]:
    """``"NAME=VALUE"`` as ``(NAME, value)``, the value a Python literal where it parses, else the string.

    >>> parse_assignment("FAST=True")
    ('FAST', True)
    """
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier() or not value.strip():
        raise ValueError(f"{option} must be NAME=VALUE; got {text!r}")
    return name, parse_value(value.strip())


def parse_grid(specs: Iterable[str]) -> dict[str, list]:
    """``--grid`` options as ``{NAME: [values]}``; each spec is ``NAME=V1,V2,...``.

    Values are Python literals where they parse, strings otherwise; commas inside brackets or
    quotes do not split (``SIZES=[1,2],[3,4]``).

    >>> parse_grid(["BETA=0.1,0.5", "DIRECTION=forward,reverse"])
    {'BETA': [0.1, 0.5], 'DIRECTION': ['forward', 'reverse']}
    """
    grid: dict[str, list] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"--grid must be NAME=V1,V2,...; got {spec!r}")
        parts = _split_values(values)
        if any(not p for p in parts):
            raise ValueError(f"--grid {name} has an empty value (two commas in a row, or none after '='); got {spec!r}")
        if name in grid:
            raise ValueError(f"--grid names {name} twice; give all its values in one --grid {name}=V1,V2,...")
        grid[name] = [parse_value(p) for p in parts]
    return grid


def check_grid(target: Target, grid: Mapping, fixed: Mapping) -> tuple[dict, dict]:
    """Validate the grid and the fixed parameters against the notebook's parameters cell."""
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError("grid must name at least one parameter and its values, e.g. --grid BETA=0.1,0.5; got none")
    known = notebook_parameters(target.path)
    checked = {}
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ValueError(f"grid values of {name} must be a list; got {values!r}")
        values = list(values)
        if not values:
            raise ValueError(f"grid {name} has no values; give at least one, e.g. --grid {name}=V1,V2")
        reprs = [repr(v) for v in values]
        for r in reprs:
            if reprs.count(r) > 1:
                raise ValueError(f"grid {name} repeats the value {r}")
        checked[name] = values
    fixed = dict(fixed or {})
    for name in fixed:
        if name in checked:
            raise ValueError(f"{name} is both in the grid and fixed with -p; give it once")
    for name in [*checked, *fixed]:
        if name not in known:
            raise ValueError(f"parameter {name!r} is not in the parameters cell of {target.path.name}; "
                             f"its parameters are: {', '.join(known)}")
    if "INTERACTIVE" in checked or fixed.get("INTERACTIVE", False) is not False:
        given = checked.get("INTERACTIVE", fixed.get("INTERACTIVE"))
        raise ValueError(f"INTERACTIVE is always False in a sweep (no widgets headless); got {given!r}")
    entry = catalog_entry(target)
    if entry is not None:  # a grid point outside the catalog's ranges is refused before any point runs
        check_parameters(entry, fixed, label=f"-p for {entry.id}")
        first = {name: values[0] for name, values in checked.items()}
        for name, values in checked.items():
            for v in values:
                point = ", ".join(f"{k}={(v if k == name else first[k])!r}" for k in checked)
                check_parameters(entry, {name: v}, label=f"{entry.id} grid point {point}")
    if "INTERACTIVE" in known:
        fixed["INTERACTIVE"] = False
    return checked, fixed


