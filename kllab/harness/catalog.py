"""The catalog: every paper kllab covers (P01..P44) and the primers, read from ``catalog.toml``.

It is the single source for the landing notebook, the command line and the tests: a paper's
notebook exists exactly when its ``notebook`` field is set.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = ["Entry", "papers", "primers", "entries", "find", "glossary", "reload", "NOTEBOOK_DIR", "CATALOG_PATH"]

CATALOG_PATH = Path(os.environ.get("KLLAB_CATALOG") or Path(__file__).with_name("catalog.toml"))
"""``catalog.toml`` beside this module, or the file named by the environment variable ``KLLAB_CATALOG``
(a copy to try a change on: kernels started from a process with it set read the same copy)."""
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
"""The repository's notebooks folder (kllab is installed in editable mode from the repository)."""

KNOBS = ("direction", "temperature", "width")


@dataclass(frozen=True)
class Entry:
    """One catalog entry: a paper (``kind == "paper"``) or a primer."""

    id: str
    title: str
    slug: str
    kind: str
    knobs: dict[str, str] = field(default_factory=dict)
    knob_meaning: dict[str, str] = field(default_factory=dict)
    directions: list[str] = field(default_factory=list)
    """The values the notebook's direction knob offers, in its order (empty without a direction knob)."""
    ranges: dict[str, dict] = field(default_factory=dict)
    """The accepted range of each knob parameter (and of others the panel moves); see ``kllab.harness.ranges``."""
    notebook: str = ""
    short: str = ""
    year: int | None = None
    arxiv: str = ""
    topic: str = ""

    @property
    def has_notebook(self) -> bool:
        return bool(self.notebook)

    @property
    def path(self) -> Path | None:
        """The notebook's path, or None if the paper has no notebook yet."""
        return NOTEBOOK_DIR / self.notebook if self.notebook else None

    @property
    def arxiv_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else ""

    @property
    def status(self) -> str:
        return "notebook" if self.notebook else "not yet"


@lru_cache(maxsize=1)
def _data() -> dict:
    return tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))


def glossary() -> dict[str, str]:
    """What each knob parameter name means, the same in every notebook: ``{NAME: meaning}``."""
    return dict(_data().get("glossary", {}))


@lru_cache(maxsize=1)
def _load() -> tuple[Entry, ...]:
    data = _data()
    out = []
    for kind, key in (("primer", "primer"), ("paper", "paper")):
        for row in data.get(key, []):
            out.append(Entry(kind=kind, **row))
    return tuple(out)


def reload() -> None:
    """Forget the cached catalog (after ``catalog.toml`` changed on disk)."""
    _data.cache_clear()
    _load.cache_clear()


def entries() -> list[Entry]:
    """Primers first, then the papers in catalog order."""
    return list(_load())


def papers() -> list[Entry]:
    """The 44 papers, P01..P44."""
    return [e for e in _load() if e.kind == "paper"]


def primers() -> list[Entry]:
    return [e for e in _load() if e.kind == "primer"]


def find(key: str) -> Entry:
    """Look an entry up by id (``P13``, case-insensitive), slug, or notebook file name.

    >>> find("p13").slug
    'p13-f-distill'
    """
    k = key.strip()
    name = Path(k).name
    for e in _load():
        if k.upper() == e.id.upper() or k == e.slug or (e.notebook and name == e.notebook):
            return e
    known = ", ".join(e.id for e in _load() if e.notebook)
    raise ValueError(f"paper must be a catalog id (P01..P44), a slug or a notebook name; got {key!r}. "
                     f"Papers with notebooks: {known or 'none'}")
