"""Every catalog notebook under real papermill runs: FAST, defaults, and a bad parameter."""

import nbformat
import pytest
from helpers import notebook_params

from kllab.harness.nbtools import parameters
from kllab.harness.run import Target, run_one

BAD_VALUE = {"direction": "sideways", "temperature": -1.0, "width": -1}


def _run(entry, tmp_path, params):
    return run_one(Target(entry.id, entry.path, entry.title), tmp_path, params)


@notebook_params
def test_fast_headless(entry, tmp_path):
    r = _run(entry, tmp_path, {"FAST": True, "INTERACTIVE": False})
    assert r.ok, r.error
    assert len(r.checks) == 1 and r.checks[0].startswith(f"CHECK {entry.id} ok"), r.checks
    assert r.html is not None and r.html.stat().st_size > 0


@notebook_params
def test_defaults_headless(entry, tmp_path):
    r = _run(entry, tmp_path, {"INTERACTIVE": False})
    assert r.ok, r.error
    committed = [ln for c in nbformat.read(entry.path, as_version=4).cells
                 if c.cell_type == "code" and c.source.startswith("# NBVAL_CHECK_OUTPUT")
                 for o in c.outputs for ln in o.get("text", "").splitlines()]
    assert r.checks == committed, "the defaults must reproduce the committed check line"


@notebook_params
def test_bad_parameter_stops_at_setup(entry, tmp_path):
    knob, name = next(iter(entry.knobs.items()))
    r = _run(entry, tmp_path, {"FAST": True, "INTERACTIVE": False, name: BAD_VALUE[knob]})
    assert not r.ok
    assert f"ValueError: {name} must" in r.error, r.error
    # It stopped in the setup cell: no check line was printed.
    assert r.checks == []


@notebook_params
def test_bad_type_is_named(entry, tmp_path):
    r = _run(entry, tmp_path, {"FAST": "yes", "INTERACTIVE": False})
    assert not r.ok and "FAST must be True or False; got 'yes'" in r.error, r.error


def test_parameters_are_literals():
    from kllab.harness import catalog

    for e in catalog.entries():
        if e.notebook:
            assert parameters(nbformat.read(e.path, as_version=4))
