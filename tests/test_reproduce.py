"""``modelcollapse reproduce``: every figure spec runs in quick mode and leaves its files; the
plots are real images; the report shows every figure and every number it promises; re-plots
simulate nothing; interrupted runs resume; theory overlays are wired to the theory module."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
from pathlib import Path

import click
import matplotlib.image as mpimg
import numpy as np
import pytest
from click.testing import CliRunner

from modelcollapse.cli._common import run_main
from modelcollapse.cli.reproduce import command as reproduce_command
from modelcollapse.experiments import FIGURES, load_figure, resolve_figures, run_figure, runner
from modelcollapse.experiments.figures import LAYOUTS
from modelcollapse.plots import simplex_xy
from modelcollapse.report import censored_warning, format_number, format_value
from modelcollapse.results import Result

#: The numbers the paper states for Fig. 6 (§4.2): mean T for K = 1, 5, 10; the pool's one
#: Dirac mass in 100 runs.
PAPER_FIG6 = {"K1": 17.0, "K5": 95.0, "K10": 216.0}


def cli(capsys, *args: str) -> tuple[int, str, str]:
    group = click.Group("modelcollapse", commands=[reproduce_command])
    code = run_main(group, list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[Path, str]:
    """``reproduce all --quick`` once for the module (the CLI, in-process): folder, stdout."""
    out = tmp_path_factory.mktemp("reproduce") / "results"
    group = click.Group("modelcollapse", commands=[reproduce_command])
    result = CliRunner().invoke(group, ["reproduce", "all", "--quick", "--out", str(out),
                                        "--no-progress"])
    assert result.exit_code == 0, result.output
    return out, result.stdout


@pytest.fixture(scope="module")
def quick(quick_run) -> Path:
    return quick_run[0]


def summary(out: Path, figure: str) -> dict:
    return json.loads((out / figure / "summary.json").read_text())


# --- files --------------------------------------------------------------------------------

@pytest.mark.parametrize("figure", FIGURES)
def test_each_spec_leaves_results_plots_and_summary(quick, figure):
    spec = load_figure(figure, quick=True)
    s = summary(quick, figure)
    assert s["mode"] == "quick" and [c["key"] for c in s["cells"]] == [c.key for c in spec.cells]
    for cell in spec.cells:
        saved = Result.load(quick / figure / "results" / f"{cell.key}.zarr")
        assert saved.data.sizes["run"] == cell.spec.runs
        assert saved.n_generations == cell.spec.generations
    pngs = [f for f in s["files"] if f.endswith(".png")]
    assert f"{figure}.png" in pngs and f"{figure}.pdf" in s["files"]
    for name in pngs:
        image = mpimg.imread(quick / figure / name)           # (height, width, channels)
        assert image.shape[0] > 300 and image.shape[1] > 600
        assert image[..., :3].std() > 0.05                     # not a blank canvas
    for name in (f for f in s["files"] if f.endswith(".pdf")):
        data = (quick / figure / name).read_bytes()
        assert data.startswith(b"%PDF") and len(data) > 5_000


def test_fig6_has_both_readings_side_by_side(quick):
    s = summary(quick, "fig6")
    assert "fig6_readings.png" in s["files"]
    readings = {c["tags"]["reading"] for c in s["cells"]}
    assert readings == {"any", "even", "literal"}
    assert {v["value"] for v in s["verdict"]} == {"even", "literal"}


# --- report -------------------------------------------------------------------------------

def test_report_shows_every_figure_and_every_number_it_promises(quick):
    md = (quick / "report.md").read_text()
    html = (quick / "report.html").read_text()
    for figure in FIGURES:
        s = summary(quick, figure)
        assert f"## {figure}: {s['title']}" in md and f'id="{figure}"' in html
        for name in (f for f in s["files"] if f.endswith(".png")):
            assert f"]({figure}/{name})" in md
            encoded = base64.b64encode((quick / figure / name).read_bytes()).decode()
            assert f"data:image/png;base64,{encoded}" in html
        for cell in s["cells"]:
            assert cell["label"] in md
            for quantity in s["report"]:
                text = format_value(cell["numbers"], quantity)
                if censored_warning(cell["numbers"], quantity):       # marked, explained
                    text += " ⚠"
                assert f"| {text} |" in md or f"| {text}\n" in md, (figure, cell["key"], quantity)
                assert f"<td>{text}</td>" in html, (figure, cell["key"], quantity)
            for row in cell["comparison"]:
                assert f"| {format_number(row['paper'])} |" in md
    # The paper's Fig. 6 numbers, beside ours, in both renderings.
    for stated in ("17", "95", "216", "0.01"):
        assert f"| {stated} |" in md and f"<td>{stated}</td>" in html
    assert "reading 'even'" in md and "reading 'literal'" in md
    assert "## Contents" in md and "<nav>" in html
    assert "<script" not in html                                # nothing but the page itself


def test_report_escapes_text_from_summaries(tmp_path, quick):
    from modelcollapse.report import build_sections, collect_summaries, render_html

    sections = build_sections(collect_summaries(quick))
    sections[0].notes = "<script>alert(1)</script>"
    html = render_html(sections, quick)
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


def test_numbers_are_formatted_as_documented():
    assert format_number(17) == "17" and format_number(216.0) == "216"
    assert format_number(98.6912) == "98.69" and format_number(158005.0) == "158,005"
    assert format_number(None) == "—" and format_number(float("nan")) == "—"
    assert format_value({"T_mean": 98.69, "T_mean_se": 6.21}, "T_mean") == "98.69 ± 6.2"


# --- theory overlays are the theory module's numbers ---------------------------------------

def test_overlays_match_independent_formulas(quick):
    from modelcollapse.theory import collapse_time_law

    fig6 = load_figure("fig6", quick=True)
    cell = next(c for c in summary(quick, "fig6")["cells"] if c["key"] == "K1")
    p0 = fig6.cell("K1").spec.build_p0()
    assert cell["numbers"]["T_exact"] == pytest.approx(collapse_time_law(p0, n=10).mean, rel=1e-12)
    # Eq. 6 written out here: S_m = 1 − (1 − 1/n)^m (1 − S0).
    s0, n, m = float(np.sum(p0**2)), 10, 150
    assert cell["numbers"]["S_eq6_final"] == pytest.approx(1 - (1 - 1 / n) ** m * (1 - s0))
    # Eq. 8 lower bound written out: 1 + (1 − S0)/(1 − 1/s̃) (n − 1).
    fig2 = load_figure("fig2", quick=True)
    for c in summary(quick, "fig2")["cells"]:
        spec = fig2.cell(c["key"]).spec
        lower = 1 + (1 - spec.S0) / (1 - 1 / spec.support) * (spec.n - 1)
        assert c["numbers"]["T_lower_eq8"] == pytest.approx(lower, rel=1e-9)
        # Littler's diffusion formula: −2n Σ (1 − p_i) ln(1 − p_i).
        p = spec.build_p0()
        p = p[p > 0]
        assert c["numbers"]["T_diffusion"] == pytest.approx(
            -2 * spec.n * np.sum((1 - p) * np.log1p(-p)), rel=1e-9)


def test_eq9_overlay_matches_theorem2_at_every_generation(quick):
    """Theorem 2 written out (sign of the last transient term as derived in appendix B.3)."""
    fig3 = load_figure("fig3", quick=True)
    for c in summary(quick, "fig3")["cells"]:
        spec = fig3.cell(c["key"]).spec
        n, N, s0, m = spec.n, spec.N, spec.S0, spec.generations
        a = n / (N + n)
        b = a * ((1 + 1 / N) * a - 1 / N)
        d = 1 + (1 + 1 / N) * a
        expected = ((1 / N) * (1 + 2 * a - (1 - 1 / N) * a * b ** (m - 1)) / d
                    + (1 - 1 / N) * s0 * (1 + a + a * b ** (m - 1) / N) / d)
        assert c["numbers"]["S_eq9_final"] == pytest.approx(expected, rel=1e-9)


def test_simplex_snapshots_are_the_fitted_models(quick):
    """Fig. 1's recorded p(m) agree exactly with the loop's own metrics at those m, for the
    one run it draws (and keeps)."""
    res = Result.load(quick / "fig1" / "results" / "shared.zarr")
    snaps = res.data["p_snapshot"].values                       # (run, context, snapshot, 3)
    kept = res.trajectories
    assert snaps.shape[0] == kept.sizes["run"] == 1
    assert np.allclose(snaps.sum(axis=-1), 1.0)
    for j, m in enumerate(res.data["snapshot"].values):
        sigma = (snaps[:, :, j] ** 2).sum(axis=-1)
        assert np.allclose(sigma, kept["sigma"].sel(generation=m).values, atol=1e-12)
        dirac = snaps[:, :, j].max(axis=-1) >= 1.0
        assert np.array_equal(dirac, kept["collapsed"].sel(generation=m).values)
    assert np.allclose(snaps[:, :, 0], res.data["p0"].values[None])
    # Twelve samples per context: every p(m) is a multiple of 1/12.
    assert np.allclose(snaps[:, :, 1:] * 12, np.round(snaps[:, :, 1:] * 12))


def test_simplex_projection_puts_diracs_on_the_corners():
    x, y = simplex_xy(np.eye(3))
    assert np.allclose(x, [0, 1, 0.5]) and np.allclose(y, [0, 0, math.sqrt(3) / 2])


# --- resume, replot, settings ---------------------------------------------------------------

def test_replot_simulates_nothing(quick, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("replot simulated a cell")

    monkeypatch.setattr(runner, "simulate_cell", forbidden)
    before = summary(quick, "fig1")
    again = run_figure(load_figure("fig1", quick=True), quick, replot=True, progress=False)
    assert again.summary["simulated_cells"] == []
    assert [c["numbers"] for c in again.summary["cells"]] == [c["numbers"] for c in before["cells"]]


def test_interrupted_run_resumes_with_the_same_numbers(tmp_path):
    figure = load_figure("fig1", quick=True, runs=3)
    first = run_figure(figure, tmp_path, progress=False).summary
    lost = figure.cells[1].key
    shutil.rmtree(tmp_path / "fig1" / "results" / f"{lost}.zarr")
    second = run_figure(figure, tmp_path, progress=False).summary
    assert second["simulated_cells"] == [lost]
    assert [c["numbers"] for c in second["cells"]] == [c["numbers"] for c in first["cells"]]
    # Other settings are a different result: nothing is reused.
    third = run_figure(load_figure("fig1", quick=True, runs=2), tmp_path, progress=False).summary
    assert len(third["simulated_cells"]) == len(figure.cells)


def test_cell_seeds_do_not_depend_on_the_other_cells():
    full, fast = load_figure("fig2"), load_figure("fig2", quick=True)
    assert len(fast.cells) < len(full.cells)
    for cell in fast.cells:
        assert full.cell(cell.key).spec.seed == cell.spec.seed
    assert len({c.spec.seed for c in full.cells}) == len(full.cells)


def test_paper_scale_specs_are_the_papers():
    fig2 = load_figure("fig2")
    assert sorted({c.spec.n for c in fig2.cells}) == [10, *range(50, 401, 50)]
    assert {(c.spec.S0, c.spec.support) for c in fig2.cells} == {
        (0.01, 181), (0.1, 29), (0.5, 10), (0.7, 9)}
    assert all(c.spec.runs == 100 for c in fig2.cells)
    fig3 = load_figure("fig3")
    assert [c.spec.n for c in fig3.cells] == [1, 10, 100, 500]
    assert {(c.spec.N, c.spec.generations, c.spec.support, c.spec.S0) for c in fig3.cells} == {
        (100, 50, 52, 0.1)}
    fig4 = load_figure("fig4")
    assert [(c.spec.S0, c.spec.n, c.spec.N) for c in fig4.cells] == [
        (0.01, 10, 100), (0.1, 10, 100), (0.5, 10, 100), (0.7, 10, 100)]
    fig6 = load_figure("fig6")
    assert all((c.spec.n, c.spec.generations, c.spec.runs) == (10, 500, 100) for c in fig6.cells)
    assert {k: fig6.cell(k).paper["T_mean"] for k in PAPER_FIG6} == PAPER_FIG6
    assert fig6.cell("pool").paper == {"collapsed_fraction": 0.01}
    fig1 = load_figure("fig1")
    assert fig1.options.snapshots == [0, 10, 20, 30, 40]
    assert {(c.spec.vocab, c.spec.contexts) for c in fig1.cells} == {(3, 81)}


def test_every_layout_is_drawable():
    assert set(LAYOUTS) == set(runner.LAYOUT_NAMES)


# --- bad input --------------------------------------------------------------------------------

def test_unknown_key_in_a_figure_spec_is_rejected(tmp_path):
    text = (runner.SPEC_DIR / "fig3.toml").read_text().replace("seed = 303", "seed = 303\nsed = 1")
    path = tmp_path / "typo.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match="sed"):
        load_figure(path)
    bad_cell = (runner.SPEC_DIR / "fig3.toml").read_text().replace("N = 100", "N = 0")
    path.write_text(bad_cell)
    with pytest.raises(ValueError, match=r"fig3, cell 'n1': N"):
        load_figure(path)


def test_cli_rejects_bad_input_with_one_line(capsys, tmp_path):
    code, _, err = cli(capsys, "reproduce", "fig7", "--out", str(tmp_path))
    assert code == 2 and "fig7" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(capsys, "reproduce", "fig6", "--runs", "0", "--out", str(tmp_path))
    assert code == 2 and "runs" in err
    code, _, err = cli(capsys, "reproduce", "fig6", "--replot", "--out", str(tmp_path / "none"))
    assert code == 2 and "--replot" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "none" / "report.md").exists()


def test_resolve_figures_keeps_paper_order():
    assert resolve_figures(["fig6", "fig1", "all"]) == list(FIGURES)
    with pytest.raises(ValueError, match="fig5"):
        resolve_figures(["fig5"])


def test_text_output_lists_the_comparisons(quick_run):
    _, out = quick_run
    assert re.search(r"K = 5 +T_mean +ours +[\d.]+ +paper 95 +z [+-]\d", out)
    assert re.search(r"random pool +collapsed_fraction +ours .* paper 0.01", out)
    assert "report:" in out and "reading 'even'" in out
    # Quick mode: K = 10's censored mean T (z ≈ −12) is the short horizon's doing, not a
    # failure; the reading is left to the full run.
    assert "reading 'even': differs" not in out and "needs the full run" in out


def test_paper_numbers_carry_their_own_sampling_error():
    numbers = {"T_mean": 100.0, "T_mean_se": 3.0, "runs": 100}
    (row,) = runner.compare_to_paper(numbers, {"T_mean": 85.0}, paper_runs=100)
    assert row["z"] == pytest.approx(15 / (3 * math.sqrt(2))) and row["agrees"] is False
    (row,) = runner.compare_to_paper(numbers, {"T_mean": 85.0})      # the paper's as exact
    assert row["z"] == pytest.approx(5.0)
    (row,) = runner.compare_to_paper({**numbers, "runs": 10_000}, {"T_mean": 85.0}, 100)
    assert row["z"] == pytest.approx(15 / (3 * math.sqrt(101))) and row["agrees"] is True
    (row,) = runner.compare_to_paper({"T_mean": 1.0, "T_mean_se": 0.0, "runs": 5},
                                     {"T_mean": 216.0}, 100)
    assert row["z"] is None and row["agrees"] is False       # no spread, and not equal


def test_a_spec_of_ones_own_runs_from_the_cli(capsys, tmp_path):
    spec = tmp_path / "mine.toml"
    spec.write_text('''
id = "mine"
title = "Two fully synthetic loops"
paper = "none"
layout = "runs_grid"
seed = 5
theory = ["eq6", "exact_T"]
report = ["T_mean", "T_exact", "sigma_final", "S_eq6_final"]

[base]
vocab = 20
support = 8
S0 = 0.3
generations = 30
runs = 12

[[cells]]
key = "small"
label = "n = 4"
spec = { n = 4 }

[[cells]]
key = "large"
label = "n = 8"
spec = { n = 8 }
''')
    code, out, _ = cli(capsys, "reproduce", str(spec), "--out", str(tmp_path / "r"),
                       "--no-progress")
    assert code == 0 and "mine" in out
    s = summary(tmp_path / "r", "mine")
    assert [c["key"] for c in s["cells"]] == ["small", "large"]
    assert "## mine: Two fully synthetic loops" in (tmp_path / "r" / "report.md").read_text()


# --- trajectories -----------------------------------------------------------------------------

def test_figures_keep_the_runs_they_draw(quick):
    """Figs. 3, 4 and 6 draw up to 100 runs one by one and keep them (every run of the quick
    mode); Fig. 2 draws none and keeps none; Fig. 1 keeps the one run whose snapshots it
    draws."""
    for figure, asked, kept in (("fig1", 1, 1), ("fig2", "none", 0), ("fig3", 100, 20),
                                ("fig4", 100, 20), ("fig6", 100, 20)):
        assert {c.spec.trajectories for c in load_figure(figure).cells} == {asked}
        for cell in load_figure(figure, quick=True).cells:
            trajectories = Result.load(quick / figure / "results" / f"{cell.key}.zarr"
                                       ).trajectories
            assert (0 if trajectories is None else trajectories.sizes["run"]) == kept


MINE = '''
id = "mine"
title = "One fully synthetic loop"
paper = "none"
layout = "runs_grid"
seed = 5
trajectories = 4

[base]
vocab = 20
support = 8
S0 = 0.3
n = 6
generations = 30
runs = 12
metrics = ["sigma"]

[[cells]]
key = "only"
label = "n = 6"
'''


def test_a_figure_keeps_exactly_the_trajectories_it_asks_for(tmp_path):
    """Runs 0 … k − 1 are kept; the means cover every run; the second-half mean's se comes
    from the kept runs' own time averages (the per-run se when every run is kept)."""
    path = tmp_path / "mine.toml"
    rows = {}
    for kept in (4, 12):
        path.write_text(MINE.replace("trajectories = 4", f"trajectories = {kept}"))
        result = runner.simulate_cell(load_figure(path).cells[0])
        trajectories = result.trajectories["sigma"].values[:, 0]        # (run, generation)
        assert list(result.trajectories["run"].values) == list(range(kept))
        rows[kept] = runner.measure(result)
        averages = trajectories[:, 15:].mean(axis=1)
        assert rows[kept]["sigma_plateau_se"] == pytest.approx(
            np.std(averages, ddof=1) / math.sqrt(12), rel=1e-12)
    assert rows[4]["sigma_plateau"] == pytest.approx(averages.mean(), rel=1e-12)
    assert rows[4]["sigma_final"] == rows[12]["sigma_final"]


@pytest.mark.parametrize("edit, message", [
    (("runs = 12", "runs = 12\ntrajectories = 2"), "'trajectories' is the figure's own"),
    (("[base]", "[options]\nsnapshots = [0, 5]\n\n[base]"), "'snapshots' are kept for the runs"),
])
def test_figure_trajectories_are_set_in_one_place(tmp_path, edit, message):
    path = tmp_path / "mine.toml"
    text = MINE.replace(*edit)
    path.write_text(text.replace("trajectories = 4", 'trajectories = "none"'))
    with pytest.raises(ValueError, match=message):
        load_figure(path)
