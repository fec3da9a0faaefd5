"""kllab.harness.record: values recorded in a notebook, read back from the executed file alone."""

import math

import nbformat
import numpy as np
import papermill
import pytest
import torch
from helpers import NOTEBOOK_ENTRIES
from nbformat.v4 import new_code_cell, new_notebook

from kllab.harness.nbtools import is_check_cell, strip
from kllab.harness.record import MIME_TYPE, _bundle, read, record
from kllab.harness import engine


def _nb(*bundles):
    """A notebook whose one code cell displayed these record bundles."""
    outputs = [nbformat.v4.new_output("display_data", data=b) for b in bundles]
    cell = new_code_cell("record(...)")
    cell.outputs = outputs
    return new_notebook(cells=[cell])


@pytest.mark.parametrize("value, expected", [
    (0.9, 0.9), (3, 3), (True, True), ("forward", "forward"), (np.float64(0.25), 0.25), (np.int64(7), 7),
    (np.bool_(False), False), (torch.tensor(1.5, dtype=torch.float64), 1.5), (torch.tensor([2.0]), 2.0),
    (math.inf, math.inf), (-math.inf, -math.inf),
])
def test_round_trip_plain_values(value, expected):
    got = read(_nb(_bundle("x", value)))["x"]
    assert got == expected and type(got) is type(expected)


def test_nan_round_trips_and_file_is_valid_json(tmp_path):
    path = tmp_path / "n.ipynb"
    nbformat.write(_nb(_bundle("kl", math.nan), _bundle("ok", 1.0)), path)
    assert "NaN" not in path.read_text()  # non-finite floats are stored as strings: the file stays strict JSON
    got = read(path)
    assert math.isnan(got["kl"]) and got["ok"] == 1.0


def test_last_value_wins_and_order_is_first_seen():
    got = read(_nb(_bundle("a", 1), _bundle("b", 2), _bundle("a", 3)))
    assert got == {"a": 3, "b": 2} and list(got) == ["a", "b"]


def test_no_records_is_empty():
    assert read(new_notebook(cells=[new_code_cell("1 + 1")])) == {}


@pytest.mark.parametrize("name, value, message", [
    ("2nd", 1.0, "name must be an identifier"),
    ("a b", 1.0, "got 'a b'"),
    (3, 1.0, "name must be an identifier"),
    ("x", [1, 2], "value of 'x' must be a float, int, bool or str"),
    ("x", None, "got NoneType None"),
    ("x", torch.ones(3), "value of 'x' must be a scalar; got Tensor of shape (3,)"),
    ("x", np.zeros((2, 2)), "must be a scalar; got ndarray of shape (2, 2)"),
])
def test_bad_input_is_named(name, value, message):
    with pytest.raises(ValueError) as err:
        record(name, value)
    assert message in str(err.value)


def test_outside_a_kernel_it_prints(capsys):
    record("steps", 600)
    record("kl", 0.123456789)
    assert capsys.readouterr().out == "recorded steps = 600\nrecorded kl = 0.123457\n"


def test_in_a_real_kernel_the_values_travel_in_the_file_and_strip_removes_them(tmp_path):
    nb = new_notebook(cells=[new_code_cell("from kllab.harness.record import record\n"
                                           "record('kl', 0.5)\nrecord('direction', 'reverse')\nrecord('n', 3)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, out = tmp_path / "r.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False)
    assert read(out) == {"kl": 0.5, "direction": "reverse", "n": 3}
    outputs = nbformat.read(out, as_version=4).cells[0].outputs
    assert [o.data["text/plain"] for o in outputs] == [
        "recorded kl = 0.5", "recorded direction = 'reverse'", "recorded n = 3"]
    assert all(MIME_TYPE in o.data for o in outputs)
    assert all(o.data["text/html"] == "" for o in outputs)  # what JupyterLab and Voila render: nothing
    assert read(strip(nbformat.read(out, as_version=4))) == {}  # the committed form keeps none


@pytest.mark.parametrize("entry", NOTEBOOK_ENTRIES, ids=[e.id for e in NOTEBOOK_ENTRIES])
def test_every_notebook_records_right_after_its_check(entry):
    cells = nbformat.read(entry.path, as_version=4).cells
    i = next(i for i, c in enumerate(cells) if is_check_cell(c))
    after = cells[i + 1]
    assert after.cell_type == "code" and "from kllab.harness.record import record" in after.source
    assert after.source.count("record(") >= 3, "record the quantities the check asserts"
    assert after.outputs == []


def test_p37_records_what_its_check_asserts(tmp_path):
    from kllab.harness import catalog

    e = catalog.find("P37")
    r = engine.run_point(engine.task_for(e.path, {"FAST": True, "INTERACTIVE": False, "BETA": 0.25}))
    assert r["status"] == "ok", r["error"]
    got = read(nbformat.reads(r["notebook"], as_version=4))
    assert got == r["records"]
    assert set(got) >= {"pi_correct", "pi_correct_forward", "pi_correct_reverse", "theory_forward",
                        "theory_reverse", "trained_error_forward", "trained_error_reverse"}
    assert got["pi_correct"] == got["pi_correct_forward"]  # DIRECTION's default is forward
    assert got["pi_correct_forward"] == pytest.approx(0.75, abs=1e-5)  # 1 - beta for a tiny epsilon
    assert got["pi_correct_reverse"] == pytest.approx(got["theory_reverse"], rel=1e-6)
    assert got["trained_error_forward"] < 1e-3
