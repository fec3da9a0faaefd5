"""The catalog: 44 papers in seed order, unique slugs, notebooks that exist, knobs that are parameters."""

import re
import tomllib
from pathlib import Path

import nbformat
import pytest

from kllab.harness import catalog
from kllab.harness.nbtools import parameters
from kllab.harness.ranges import knob_ranges

SEED_LIST = Path(__file__).resolve().parents[2].parent / "shared" / "papers" / "seed_papers.md"


def test_44_papers_in_order():
    ids = [e.id for e in catalog.papers()]
    assert ids == [f"P{i:02d}" for i in range(1, 45)]


def test_fields_are_well_formed():
    slugs = set()
    for e in catalog.entries():
        assert re.fullmatch(r"[a-z0-9-]{3,40}", e.slug), e.slug
        assert e.slug not in slugs
        slugs.add(e.slug)
        assert set(e.knobs) <= {"direction", "temperature", "width"} and e.knobs, e.id
        assert set(e.knob_meaning) == set(e.knobs), e.id
        if e.kind == "paper":
            assert 2010 <= e.year <= 2026 and re.fullmatch(r"\d{4}\.\d{4,5}", e.arxiv), e.id
            assert e.year == 2000 + int(e.arxiv[:2]), e.id  # arXiv ids start with the v1 year
        if e.notebook:
            assert e.notebook == f"{e.slug}.ipynb", e.id


@pytest.mark.skipif(not SEED_LIST.exists(), reason="the seed list lives outside the repository")
def test_titles_match_the_seed_list():
    headings = dict(re.findall(r"^## (P\d\d)\. (.+)$", SEED_LIST.read_text(encoding="utf-8"), flags=re.M))
    for e in catalog.papers():
        assert e.title == headings[e.id].strip(), e.id


def _range_checks(nb) -> set[str]:
    """The parameters the notebook validates through the catalog's ranges: ``RANGES.check("NAME", NAME)``."""
    import ast

    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code" and not c.source.lstrip().startswith("%"))
    return {node.args[0].value for node in ast.walk(ast.parse(code))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "check"
            and getattr(node.func.value, "id", "") == "RANGES" and node.args and isinstance(node.args[0], ast.Constant)}


@pytest.mark.parametrize("e", [e for e in catalog.entries() if e.notebook], ids=lambda e: e.id)
def test_catalog_knobs_match_the_notebook(e):
    """knobs name parameters of the notebook; DIRECTION (whose accepted values are the directions) and every
    other parameter with a catalog range are validated with ``RANGES.check``;
    every knob parameter has one meaning in the glossary; the default DIRECTION is one of them."""
    assert e.path.exists(), e.notebook
    nb = nbformat.read(e.path, as_version=4)
    params = parameters(nb)
    glossary = catalog.glossary()
    for knob, name in e.knobs.items():
        assert name in params, f"{e.id}: knob {knob} -> {name} is not a parameter of {e.notebook}"
        assert name in glossary, f"{e.id}: {name} is not in the catalog's [glossary]; add what it means"
    if "direction" in e.knobs:
        assert e.directions, f"{e.id}: a direction knob needs its directions listed in the catalog"
        assert params[e.knobs["direction"]] in e.directions
        assert {"forward", "reverse"} <= set(e.directions), f"{e.id}: DIRECTION offers forward and reverse, plus others"
    else:
        assert not e.directions, f"{e.id}: directions listed without a direction knob"
    # Every parameter with a catalog range (DIRECTION's are its directions) is validated against that range.
    ranged = {r.name for r in knob_ranges(e.id)}
    missing = ranged - _range_checks(nb)
    assert not missing, f"{e.id}: the setup cell does not validate {sorted(missing)} with RANGES.check"


def test_every_notebook_file_is_in_the_catalog():
    listed = {e.notebook for e in catalog.entries() if e.notebook}
    on_disk = {p.name for p in catalog.NOTEBOOK_DIR.glob("*.ipynb")} - {"index.ipynb"}
    assert on_disk == listed


def test_find():
    assert catalog.find("p37").slug == "p37-rapo"
    assert catalog.find("p37-rapo").id == "P37"
    assert catalog.find("notebooks/p37-rapo.ipynb").id == "P37"
    with pytest.raises(ValueError, match="paper must be a catalog id"):
        catalog.find("P99")


def test_catalog_file_is_valid_toml():
    data = tomllib.loads(catalog.CATALOG_PATH.read_text(encoding="utf-8"))
    assert len(data["paper"]) == 44
