"""A sweep's table: one row per grid point, kept in ``results.csv`` beside ``sweep.json``."""

from __future__ import annotations

import csv
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..nbtools import parse_value

__all__ = ["Table", "load", "write_csv", "RESULTS", "META", "FIXED_COLUMNS"]

RESULTS = "results.csv"
META = "sweep.json"
FIXED_COLUMNS = ("status", "error", "seconds")


def _key(point: Mapping) -> str:
    """A point's identity: its parameters with their reprs, in grid order."""
    return ", ".join(f"{k}={v!r}" for k, v in point.items())


def _label(point: Mapping) -> str:
    return " ".join(f"{k}={v!r}" for k, v in point.items())


def _cell(value) -> str:
    """A value as CSV text that reads back to the same value with :func:`_uncell`."""
    if value is None:
        return ""
    if isinstance(value, str):
        back = parse_value(value)
        return value if value and isinstance(back, str) and back == value and value not in _NONFINITE else repr(value)
    return repr(value)


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _uncell(text: str):
    if text == "":
        return None
    if text in _NONFINITE:
        return _NONFINITE[text]
    return parse_value(text)


def _format(value, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


@dataclass(repr=False)
class Table:
    """The results of a sweep: one row per grid point, as dicts.

    Columns: the grid parameters (in grid order), ``status`` (``"ok"`` or ``"failed"``),
    ``error``, ``seconds``, one column per recorded quantity, and ``notebook`` (the executed
    notebook, relative to the sweep's folder). A quantity a row did not record is ``None``.

    >>> t = Table([{"BETA": 0.1, "status": "ok", "error": "", "seconds": 1.0, "kl": 0.5, "notebook": ""}], ["BETA"])
    >>> t.column("kl"), t.metrics
    ([0.5], ['kl'])
    """

    rows: list[dict]
    grid: list[str]
    notebook: str = ""
    path: Path | None = None
    fixed: dict = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        """The recorded quantities, in the order first seen."""
        seen: dict[str, None] = {}
        for row in self.rows:
            for k in row:
                if k not in self.grid and k not in FIXED_COLUMNS and k != "notebook":
                    seen.setdefault(k)
        return list(seen)

    @property
    def columns(self) -> list[str]:
        return [*self.grid, *FIXED_COLUMNS, *self.metrics, "notebook"]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] != "ok"]

    def column(self, name: str) -> list:
        if name not in self.columns:
            raise ValueError(f"column must be one of {', '.join(self.columns)}; got {name!r}")
        return [row.get(name) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]

    def to_pandas(self):
        """The table as a pandas DataFrame (needs pandas, which kllab does not require)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)

    def figure(self, metric: str, **kwargs):
        """:func:`kllab.harness.sweep.figure` of this table."""
        from .figure import figure

        return figure(self, metric, **kwargs)

    def format(self, columns: Sequence[str] | None = None, digits: int = 4, width: int | None = None) -> str:
        """An aligned text table (errors left out; see :attr:`failed`).

        With ``width``, the last columns that do not fit are left out and counted in a note.
        """
        columns = list(columns or [c for c in self.columns if c not in ("error", "notebook")])
        def text(row: dict, c: str) -> str:
            if c in self.grid:
                return _cell(row.get(c))
            return f"{row[c]:.1f}" if c == "seconds" else _format(row.get(c), digits)

        cells = [columns] + [[text(r, c) for c in columns] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
        keep = len(columns)
        while width and keep > 1 and sum(widths[:keep]) + 2 * (keep - 1) > width:
            keep -= 1
        lines = ["  ".join(v.ljust(w) for v, w in zip(row[:keep], widths)).rstrip() for row in cells]
        note = [f"(and {len(columns) - keep} more column(s): {', '.join(columns[keep:])})"] if keep < len(columns) else []
        return "\n".join([lines[0], "-" * max(len(ln) for ln in lines), *lines[1:], *note])

    def __str__(self) -> str:
        return self.format()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        columns = [c for c in self.columns if c != "notebook"]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            f"<tr{'' if r['status'] == 'ok' else ' style=background:#fdd'}>"
            + "".join(f"<td>{html.escape(_cell(r.get(c)) if c in self.grid else _format(r.get(c)))}</td>"
                      for c in columns) + "</tr>"
            for r in self.rows)
        return f"<table><tr>{head}</tr>{body}</table>"


def write_csv(path: Path, table: Table) -> None:
    """Replace ``path`` atomically: an interrupt leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(table.columns)
        for row in table.rows:
            writer.writerow([f"{row['seconds']:.2f}" if c == "seconds" else
                             row.get(c, "") if c in ("status", "error", "notebook") else _cell(row.get(c))
                             for c in table.columns])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(out: Path | str) -> Table:
    """The table of the sweep in folder ``out`` (its ``results.csv`` and ``sweep.json``)."""
    out = Path(out)
    meta_path, csv_path = out / META, out / RESULTS
    if not csv_path.exists() or not meta_path.exists():
        raise ValueError(f"out must be a sweep folder with {RESULTS} and {META}; got {str(out)!r}")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    rows = []
    with open(csv_path, newline="", encoding="utf-8") as f:
        for raw in csv.DictReader(f):
            row = {}
            for k, v in raw.items():
                if k in ("status", "error", "notebook"):
                    row[k] = v
                elif k == "seconds":
                    row[k] = float(v)
                else:
                    row[k] = _uncell(v)
            rows.append(row)
    fixed = {k: parse_value(v) for k, v in meta["parameters"].items()}
    return Table(rows, list(meta["grid"]), meta["notebook"], csv_path, fixed)


