"""One range per knob parameter: the catalog record, its checks, its panel controls, and the command line."""

import math
import subprocess
import sys

import ipywidgets as W
import pytest

from kllab.harness import catalog
from kllab.harness.ranges import Range, Ranges, check_parameters, knob_ranges, parse_range


def test_integer_log_range_checks_and_positions():
    r = parse_range("WIDTH", {"min": 2, "max": 64, "scale": "log", "step": 2})
    assert r.integer and r.ends == [2, 64] and r.describe() == "[2, 64] log x2"
    assert r.check(2) == 2 and r.check(64) == 64
    assert r.positions() == [2, 4, 8, 16, 32, 64]
    assert r.positions(5) == [2, 4, 5, 8, 16, 32, 64]
    with pytest.raises(ValueError, match=r"^WIDTH must be in \[2, 64\]; got 4000$"):
        r.check(4000)
    with pytest.raises(ValueError, match=r"^WIDTH must be in \[2, 64\]; got 1$"):
        r.check(1)
    with pytest.raises(TypeError, match=r"^WIDTH must be an integer in \[2, 64\]; got 4.0 \(float\)$"):
        r.check(4.0)
    with pytest.raises(TypeError, match=r"got True \(bool\)"):
        r.check(True)


def test_positions_end_on_max_when_the_steps_do_not():
    r = parse_range("N", {"min": 20, "max": 400, "scale": "log", "step": 2})
    assert r.positions() == [20, 40, 80, 160, 320, 400]
    lin = parse_range("K", {"min": 1, "max": 10, "scale": "linear", "step": 4})
    assert lin.positions() == [1, 5, 9, 10]


def test_real_range_checks_and_types():
    r = parse_range("TEMPERATURE", {"min": 0.1, "max": 10.0, "scale": "log", "step": 1.25})
    assert r.check(1) == 1.0 and isinstance(r.check(1), float)
    for bad in (0.09, 10.01, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"^TEMPERATURE must be in \[0.1, 10\]; got "):
            r.check(bad)
    with pytest.raises(TypeError, match=r"^TEMPERATURE must be a number in \[0.1, 10\]; got '2' \(str\)$"):
        r.check("2")


def test_choices():
    r = parse_range("FAMILY", {"choices": ["unigram", "bigram"]})
    assert r.categorical and r.ends == ["unigram", "bigram"] and r.check("bigram") == "bigram"
    with pytest.raises(ValueError, match=r"^FAMILY must be one of 'unigram', 'bigram'; got 'table'$"):
        r.check("table")


@pytest.mark.parametrize("spec, message", [
    ({"min": 1, "max": 2.0, "scale": "linear", "step": 1}, "must both be integers or both floats"),
    ({"min": 2, "max": 1, "scale": "linear", "step": 1}, "min must be < max"),
    ({"min": 0.0, "max": 1.0, "scale": "log", "step": 2.0}, "a log range needs min > 0"),
    ({"min": 0.1, "max": 1.0, "scale": "log", "step": 0.5}, "a step factor > 1"),
    ({"min": 0.0, "max": 1.0, "scale": "linear", "step": 0.0}, "a linear range needs step > 0"),
    ({"min": 0.0, "max": 1.0, "scale": "cubic", "step": 0.1}, "scale must be one of"),
    ({"min": 0.0, "max": 1.0, "scale": "linear"}, "needs min, max, scale and step; missing ['step']"),
    ({"choices": []}, "a non-empty list"),
])
def test_malformed_catalog_range_names_the_parameter(spec, message):
    with pytest.raises(ValueError, match="catalog range of X") as err:
        parse_range("X", spec)
    assert message in str(err.value)


def test_the_panel_controls_offer_exactly_the_range():
    log = Range("T", 0.1, 10.0, "log", 1.25).widget(1.0, "t")
    assert isinstance(log, W.FloatLogSlider)
    assert math.isclose(10 ** log.min, 0.1) and math.isclose(10 ** log.max, 10.0)
    assert math.isclose(10 ** log.step, 1.25)
    log.value = 1e6  # a value past the end is clamped by the widget itself
    assert log.value <= 10.0 + 1e-9
    lin = Range("S", 0.0, 2.0, "linear", 0.05).widget(0.2, "s")
    assert isinstance(lin, W.FloatSlider) and (lin.min, lin.max, lin.step) == (0.0, 2.0, 0.05)
    ints = Range("W", 2, 64, "log", 2).widget(4, "w")
    assert isinstance(ints, W.SelectionSlider) and list(ints.options) == [2, 4, 8, 16, 32, 64]
    with pytest.raises(ValueError, match="W must be in"):
        Range("W", 2, 64, "log", 2).widget(100, "w")


def test_direction_comes_from_the_entry_directions():
    r = knob_ranges("P08")
    assert r["DIRECTION"].choices == tuple(catalog.find("P08").directions)
    assert [x.name for x in r][0] == "DIRECTION"
    with pytest.raises(KeyError, match="P08 has no catalog range for 'NOPE'"):
        r["NOPE"]


def test_check_parameters_labels_the_refusal_and_ignores_other_parameters():
    entry = catalog.find("P08")
    check_parameters(entry, {"FAST": True, "WIDTH": 8})
    with pytest.raises(ValueError, match=r"^grid point WIDTH=4000: WIDTH must be in \[2, 64\]; got 4000$"):
        check_parameters(entry, {"WIDTH": 4000}, label="grid point WIDTH=4000")
    with pytest.raises(ValueError, match=r"^WIDTH must be an integer"):  # a wrong type is one refusal too
        check_parameters(entry, {"WIDTH": "wide"})


def test_every_entry_with_a_notebook_has_well_formed_ranges():
    for e in catalog.entries():
        ranges = Ranges(e)
        if e.notebook:
            assert all(name in ranges for name in e.knobs.values()), e.id


def _kllab(*args):
    return subprocess.run([sys.executable, "-m", "kllab", *args], capture_output=True, text=True, timeout=600)


def test_run_refuses_a_value_outside_the_range_before_anything_runs(tmp_path):
    out = _kllab("run", "P08", "-p", "WIDTH=4000", "--out", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr == "kllab run: -p for P08: WIDTH must be in [2, 64]; got 4000\n"
    assert not list(tmp_path.iterdir())


def test_list_shows_a_papers_ranges():
    out = _kllab("list", "P08")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].startswith("P08 · BD-KD")
    assert any(ln.split()[:2] == ["WIDTH", "width"] and ln.endswith("[2, 64] log x2") for ln in lines), out.stdout
    assert any(ln.split()[:2] == ["DIRECTION", "direction"] for ln in lines)
