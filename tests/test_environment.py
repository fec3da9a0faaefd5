"""environment.yml, binder/ and pyproject.toml name the same dependencies; binder installs kllab."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAME = {"pytorch-cpu": "torch", "python-kaleido": "kaleido"}  # conda-forge names


def _name(spec: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", spec)
    name = m.group(1).lower().replace("_", "-")
    return CONDA_NAME.get(name, name), m.group(2).replace(" ", "")


def pyproject_deps():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["test"]
    return dict(_name(d) for d in deps)


def conda_deps(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge"]
    out = {}
    for d in env["dependencies"]:
        if isinstance(d, str) and not d.startswith(("python=", "pip")):
            k, v = _name(d)
            out[k] = v
    return out, env


def test_root_environment_matches_pyproject():
    deps, env = conda_deps(ROOT / "environment.yml")
    assert deps == pyproject_deps()
    assert "pytorch-cpu>=2.2" in env["dependencies"]  # never the CUDA build
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip  # kllab itself


def test_binder_environment_matches_and_postbuild_installs_kllab():
    deps, _ = conda_deps(ROOT / "binder" / "environment.yml")
    assert deps == pyproject_deps()
    post = (ROOT / "binder" / "postBuild").read_text().splitlines()
    assert post[0].startswith("#!") and post[1:].count("set -e") == 1
    assert any(re.search(r"pip install .*-e \.$", ln) for ln in post)
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"
    for ln in post:  # every repository file postBuild copies exists
        m = re.match(r"cp (?:-r )?(\S+) ", ln)
        if m:
            assert (ROOT / m.group(1)).exists(), m.group(1)


def test_readme_links_point_at_existing_paths():
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"urlpath=(?:lab/tree|voila/render)/([^\s)&\"]+)", readme):
        assert (ROOT / target.replace("%2F", "/")).exists(), target


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    m = re.search(r"```bash\n# run the tests\n(.+?)\n```", readme)
    assert m, "README must show the test command in a ```bash block starting with '# run the tests'"
    assert m.group(1).strip() in ci


def test_dashboards_plotly_bundle_is_the_major_version_plotly_writes_for():
    """The dashboards draw figures with the plotly.js cartesian bundle that kllab ships
    (kllab/harness/jupyter/labextensions/kllab-plotly); the figures are plotly.py's JSON, written for the
    plotly.js that plotly.py bundles. On a new major version, update the bundle (npm's
    plotly.js-cartesian-dist-min at plotly.py's version)."""
    from plotly.offline import get_plotlyjs_version

    from kllab.harness.dashboard import plotly_bundle_version

    ours, theirs = plotly_bundle_version(), get_plotlyjs_version()
    assert ours.split(".")[0] == theirs.split(".")[0], (ours, theirs)
