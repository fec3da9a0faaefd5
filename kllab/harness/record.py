"""Named scalar results that travel inside an executed notebook.

A notebook calls :func:`record` for the quantities its check cell asserts (and others worth
plotting); each call displays one output with the MIME type :data:`MIME_TYPE`, so the value is
saved in the executed ``.ipynb`` by Jupyter, papermill or nbclient alike. :func:`read` gets the
values back from the file alone, which is how ``kllab sweep`` fills one column per quantity.

The committed notebooks keep no such output: the record calls sit in a small cell right after
the check cell, and ``kllab strip`` removes every output outside the check cells.

>>> from kllab.harness.record import record
>>> record("pi_correct", 0.9)   # outside Jupyter it prints its text form
recorded pi_correct = 0.9
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from numbers import Integral, Real
from pathlib import Path

__all__ = ["MIME_TYPE", "record", "read"]

MIME_TYPE = "application/vnd.kllab.harness.record+json"
"""The output's MIME type; its data is ``{"name": ..., "value": ..., "type": "float"|"int"|"bool"|"str"}``."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def _plain(name: str, value) -> tuple[object, str]:
    """``value`` as a plain Python scalar and its type name; 0-d NumPy arrays and tensors are unwrapped."""
    if not isinstance(value, (bool, int, float, str)) and hasattr(value, "item"):
        try:
            value = value.item()
        except (ValueError, RuntimeError):  # an array or tensor of more than one element
            raise ValueError(f"value of {name!r} must be a scalar; got {type(value).__name__} of shape "
                             f"{tuple(getattr(value, 'shape', ()))}") from None
    if isinstance(value, bool):
        return value, "bool"
    if isinstance(value, Integral):
        return int(value), "int"
    if isinstance(value, Real):
        return float(value), "float"
    if isinstance(value, str):
        return value, "str"
    raise ValueError(f"value of {name!r} must be a float, int, bool or str (or a 0-d array or tensor); "
                     f"got {type(value).__name__} {value!r:.60}")


def _bundle(name: str, value) -> dict:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be an identifier (letters, digits, '_' or '.', not starting with a digit); "
                         f"got {name!r}")
    value, kind = _plain(name, value)
    stored = value if kind != "float" or math.isfinite(value) else repr(value)  # 'inf', '-inf', 'nan'
    shown = {"float": f"{value:.6g}" if kind == "float" else "", "str": repr(value)}.get(kind, str(value))
    text = f"recorded {name} = {shown}"
    # An empty text/html is what JupyterLab and Voila render (they prefer HTML), so the line stays out
    # of the page; text/plain keeps it readable in the executed .ipynb and its nbconvert text.
    return {MIME_TYPE: {"name": name, "value": stored, "type": kind}, "text/html": "", "text/plain": text}


def record(name: str, value) -> None:
    """Record the scalar ``value`` under ``name`` in the notebook being executed.

    Parameters
    ----------
    name : an identifier such as ``"pi_correct_forward"`` (letters, digits, ``_`` and ``.``);
        recording the same name again replaces the value.
    value : a float, int, bool or str; a NumPy scalar or a one-element tensor is converted with
        ``.item()``. ``inf`` and ``nan`` are kept.

    In a kernel it displays one output carrying :data:`MIME_TYPE` and a one-line text form;
    elsewhere it prints the text form. Returns nothing, so a cell that ends with it shows no
    ``Out[...]``.

    >>> record("steps", 600)
    recorded steps = 600
    >>> record("2nd", 1.0)
    Traceback (most recent call last):
    ...
    ValueError: name must be an identifier (letters, digits, '_' or '.', not starting with a digit); got '2nd'
    """
    bundle = _bundle(name, value)
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        get_ipython = lambda: None  # noqa: E731
    if get_ipython() is None:
        print(bundle["text/plain"])
        return
    from IPython.display import display

    display(bundle, raw=True)


def _decode(data: Mapping):
    value, kind = data["value"], data.get("type")
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    return value


def read(notebook) -> dict:
    """The values recorded in an executed notebook, ``{name: value}``, in the order first recorded.

    Parameters
    ----------
    notebook : a path to an ``.ipynb`` file, or a notebook already read (``nbformat`` node or dict).

    A name recorded twice keeps its last value. A notebook with no records gives ``{}``.

    >>> nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "display_data",
    ...       "data": {MIME_TYPE: {"name": "kl", "value": "inf", "type": "float"}}}]}]}
    >>> read(nb)
    {'kl': inf}
    """
    if isinstance(notebook, (str, Path)):
        notebook = json.loads(Path(notebook).read_text(encoding="utf-8"))
    out: dict = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data", {}).get(MIME_TYPE)
            if data is None:
                continue
            if isinstance(data, str):  # some writers keep JSON MIME data as text
                data = json.loads(data)
            out[data["name"]] = _decode(data)
    return out
