"""The files in examples/: the specs validate and run (shortened by their own overrides), the
Python workflow runs end to end, its rendered Markdown shows the script's current code, and
every examples/ path the README and docs name exists."""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

import modelcollapse as mc
from cli_runner import run_in
from modelcollapse.sweep import SweepInputError, SweepSpec, load_sweep_spec, run_sweep

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _workflow():
    spec = importlib.util.spec_from_file_location("python_workflow",
                                                  EXAMPLES / "python_workflow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shortened(spec: SweepSpec, **changes) -> SweepSpec:
    return SweepSpec(**(spec.model_dump() | changes))


def test_simulate_spec_validates():
    spec = mc.load_spec(EXAMPLES / "simulate.toml")
    assert (spec.scenario, spec.n, spec.N) == ("partially-synthetic", 10, 100)
    assert (spec.vocab, spec.support, spec.S0) == (600, 52, 0.1)
    assert spec.kept_runs() == 20


def test_simulate_spec_runs_from_the_cli(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    done = run_in(work, "simulate", "--config", str(EXAMPLES / "simulate.toml"),
                  "--runs", "30", "--generations", "5", "--out", "run", "--format", "json",
                  "--no-progress")
    assert done.code == 0, done.err
    summary = json.loads(done.out)
    assert (summary["runs"], summary["generations"]) == (30, 5)
    assert summary["scenario"].startswith("partially-synthetic")
    result = mc.Result.load(work / "run" / "result.zarr")
    assert result.metrics == ("sigma", "l1_to_first", "l1_to_true", "collapsed")
    assert len(result.to_dataframe()) == 6


@pytest.mark.parametrize("name", ["sweep_support.toml", "sweep_n_S0.toml"])
def test_sweep_specs_validate(name):
    spec = load_sweep_spec(EXAMPLES / name)
    assert spec.runs == 1000 and spec.seed == 2024
    assert len(spec.points(2024)) == {"sweep_support.toml": 10, "sweep_n_S0.toml": 200}[name]


def test_support_sweep_needs_the_uniform_family():
    spec = load_sweep_spec(EXAMPLES / "sweep_support.toml")
    assert spec.fixed["family"] == "uniform"
    supports = [p.coords["support"] for p in spec.points(2024)]
    assert supports == [2, 4, 8, 16, 32, 63, 126, 251, 501, 1000]  # as the spec's comment says
    # The default family 'target' (S0 = 0.1) cannot have a support below 10: refused at once.
    fixed = {k: v for k, v in spec.fixed.items() if k != "family"}
    with pytest.raises((SweepInputError, ValueError), match="S0"):
        SweepSpec(**(spec.model_dump() | {"fixed": fixed}))


def test_support_sweep_runs_shortened(tmp_path):
    spec = _shortened(load_sweep_spec(EXAMPLES / "sweep_support.toml"), runs=40,
                      axes={"support": [2, 16, 1000]})
    with ThreadPoolExecutor(1) as pool:
        outcome = run_sweep(spec, tmp_path / "sweep", executor=pool, progress=False)
    points = outcome.points().sort_values("support")
    assert points["support"].tolist() == [2, 16, 1000]
    assert (points["censored_runs"] == 0).all()  # generations = 1000 ≫ E[T] ≈ 2n
    assert points["collapse_time_mean"].between(5, 100).all()
    generations = pd.read_parquet(tmp_path / "sweep" / "generations.parquet")
    assert len(generations) == 3 * 1001


def test_python_workflow_runs_shortened(tmp_path):
    workflow = _workflow()
    figure, markdown = tmp_path / "figure.png", tmp_path / "workflow.md"
    workflow.main(["--runs", "30", "--workers", "1", "--out", str(tmp_path / "out"),
                   "--figure", str(figure), "--markdown", str(markdown)])
    assert figure.stat().st_size > 10_000
    assert (tmp_path / "out" / "simulate.zarr").is_dir()
    assert (tmp_path / "out" / "sweep_support" / "points.parquet").is_file()
    text = markdown.read_text()
    assert "python examples/python_workflow.py --runs 30" in text
    for name in workflow.STEPS:
        assert getattr(workflow, name).__doc__ in text
    assert "![The figure of step 4](figure.png)" in text


def test_rendered_workflow_shows_the_current_script():
    """examples/python_workflow.md was rendered from the script as it is now: the code of every
    step in it is the script's, and it links the figure it shows."""
    workflow = _workflow()
    text = (EXAMPLES / "python_workflow.md").read_text()
    for name in workflow.STEPS:
        source = inspect.getsource(getattr(workflow, name)).rstrip()
        assert f"```python\n{source}\n```" in text, f"{name} changed: render the Markdown again"
    assert "run as `python examples/python_workflow.py`" in text  # the full sizes
    assert "![The figure of step 4](python_workflow.png)" in text
    assert (EXAMPLES / "python_workflow.png").is_file()


def test_examples_named_in_readme_and_docs_exist():
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {match for path in texts
             for match in re.findall(r"examples/[\w./-]+\.(?:toml|py|md|png)", path.read_text())}
    assert "examples/sweep_support.toml" in named and "examples/python_workflow.py" in named
    missing = sorted(name for name in named if not (ROOT / name).exists())
    assert not missing, missing


def test_readme_python_runs(tmp_path, monkeypatch):
    """The README's Python blocks run as written: the example, then the result reloaded and
    plotted anew (its sweep table stood in for by a small one)."""
    import matplotlib

    matplotlib.use("Agg")
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep_support").mkdir()
    pd.DataFrame({"support": [2, 4], "collapse_time_mean": [25.0, 33.0]}).to_parquet(
        tmp_path / "sweep_support" / "points.parquet")
    names: dict = {}
    exec(blocks[0], names)
    assert names["z"][1:].abs().max() < 4  # simulation against Theorem 2, as the comment says
    assert len(names["runs"]) == 1000
    exec(blocks[1], names)
    assert names["res"].n_generations == 50 and len(names["points"]) == 2
