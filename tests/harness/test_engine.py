"""The execution engine: kept kernels reused and reset, fresh ones when asked, nbval on the same kernel."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from kllab.harness import engine
from kllab.harness.engine import kernels
from kllab.harness.record import read


def _notebook(tmp_path, name, *cells, params="FLAG = False  # a parameter"):
    p = new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[p, *(new_code_cell(c) for c in cells)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


PID = "import os\nfrom kllab.harness.record import record\nrecord('pid', os.getpid())"


def test_kept_kernel_is_reused_even_after_a_failing_cell(tmp_path):
    ok = _notebook(tmp_path, "ok.ipynb", PID)
    bad = _notebook(tmp_path, "bad.ipynb", PID, "raise RuntimeError('boom')")
    first = engine.run_point(engine.task_for(ok))
    failed = engine.run_point(engine.task_for(bad))
    again = engine.run_point(engine.task_for(ok))
    assert first["status"] == "ok" and again["status"] == "ok"
    assert failed["status"] == "failed" and 'cell 2 ("raise RuntimeError(\'boom\')"): RuntimeError: boom' in failed["error"]
    assert first["records"]["pid"] == read(nbformat.reads(failed["notebook"], as_version=4))["pid"] == \
        again["records"]["pid"], "one kernel for all three runs"
    assert 0 < again["cell_seconds"] < again["seconds"]


def test_fresh_kernel_is_another_process(tmp_path):
    ok = _notebook(tmp_path, "ok.ipynb", PID)
    kept = engine.run_point(engine.task_for(ok))["records"]["pid"]
    fresh = engine.run_point(engine.task_for(ok, fresh=True))["records"]["pid"]
    assert fresh != kept
    assert engine.run_point(engine.task_for(ok))["records"]["pid"] == kept  # the kept one is still there


def test_a_dead_kernel_is_replaced(tmp_path):
    ok = _notebook(tmp_path, "ok.ipynb", PID)
    die = _notebook(tmp_path, "die.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    before = engine.run_point(engine.task_for(ok))["records"]["pid"]
    dead = engine.run_point(engine.task_for(die, timeout=60))
    assert dead["status"] == "failed" and dead["error"], dead
    after = engine.run_point(engine.task_for(ok))
    assert after["status"] == "ok" and after["records"]["pid"] != before


def test_nbval_runs_on_the_same_kept_kernel(tmp_path):
    from kllab.harness.nbval_kept import _kept_class

    ok = _notebook(tmp_path, "ok.ipynb", PID)
    pid = engine.run_point(engine.task_for(ok))["records"]["pid"]
    nbval_kernel = _kept_class()("python3", cwd=str(tmp_path))
    try:
        msg = nbval_kernel.execute_cell_input("LEFT = 1\nimport os\nprint(os.getpid(), os.getcwd())", allow_stdin=False)
        nbval_kernel.await_reply(msg, timeout=30)
        out = ""
        while True:
            m = nbval_kernel.get_message(stream="iopub", timeout=10)
            if m["parent_header"].get("msg_id") == msg and m["msg_type"] == "stream":
                out += m["content"]["text"]
            if m["parent_header"].get("msg_id") == msg and m["msg_type"] == "status" \
                    and m["content"]["execution_state"] == "idle":
                break
    finally:
        nbval_kernel.stop()
    assert out.split() == [str(pid), str(tmp_path)]
    # and the next run finds a reset kernel: the same process, without nbval's variable
    check = _notebook(tmp_path, "check.ipynb", PID + "\nrecord('left', 'LEFT' in globals())")
    again = engine.run_point(engine.task_for(check))
    assert again["records"] == {"pid": pid, "left": False}


def test_run_tasks_on_two_workers_keeps_order_of_results_by_task(tmp_path):
    ok = _notebook(tmp_path, "ok.ipynb", PID + "\nrecord('flag', FLAG)")
    tasks = [engine.task_for(ok, {"FLAG": i}, index=i) for i in range(4)]
    seen = {}
    engine.run_tasks(tasks, lambda task, res: seen.__setitem__(task["index"], res), workers=2)
    assert sorted(seen) == [0, 1, 2, 3] and all(seen[i]["records"]["flag"] == i for i in range(4))
    assert len({r["records"]["pid"] for r in seen.values()}) == 2, "two workers, two kept kernels"


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_workers(workers):
    with pytest.raises(ValueError, match=f"workers must be an integer >= 1; got {workers!r}"):
        engine.run_tasks([{}], lambda t, r: None, workers=workers)


def test_kernels_are_registered_for_shutdown_at_exit():
    assert kernels._AT_EXIT, "the first kernel registered shutdown_all with atexit"


def test_kllab_groups_run_in_one_process_in_collection_order(tmp_path):
    """The scheduler keeps an ini group on one worker, in order (the course site needs test_fast's runs)."""
    import subprocess
    import sys

    (tmp_path / "test_a.py").write_text(
        "import os, pytest\n"
        "@pytest.mark.parametrize('i', range(6))\n"
        "def test_first(i):\n"
        "    open(f'log_{os.environ[\"PYTEST_XDIST_WORKER\"]}', 'a').write(f'first{i}\\n')\n"
        "def test_other():\n    pass\n", encoding="utf-8")
    (tmp_path / "test_b.py").write_text(
        "import os\n"
        "def test_after():\n"
        "    open(f'log_{os.environ[\"PYTEST_XDIST_WORKER\"]}', 'a').write('after\\n')\n", encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nkllab_groups =\n    together: test_a.py::test_first test_b.py\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "kllab.harness.nbval_kept",
                           "-n", "2", "-p", "no:randomly"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    logs = [p.read_text().split() for p in tmp_path.glob("log_gw*")]
    assert len(logs) == 1, logs
    assert logs[0] == [f"first{i}" for i in range(6)] + ["after"], logs

    (tmp_path / "pytest.ini").write_text("[pytest]\nkllab_groups =\n    no prefixes\n", encoding="utf-8")
    bad = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "kllab.harness.nbval_kept",
                          "-n", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "kllab_groups: each line must be 'NAME: NODEID-PREFIX ...'" in bad.stdout + bad.stderr
