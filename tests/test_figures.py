"""What the figures and the report show, checked on what is drawn (not on screenshots): theory
overlays equal the theory module's values, rows of panels share their y-axis, log axes stop at
meaningful probabilities, histograms count in whole runs, an empty panel says why, and the
report has contents, aligned columns and a warning beside a mean over censored runs. Under
--quick, numbers that only the full horizon can judge are not called agreeing or differing."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest

from modelcollapse import simulate
from modelcollapse.cli import main
from modelcollapse.cli.reproduce import _text
from modelcollapse.experiments import figures, load_figure, run_figure, runner
from modelcollapse.plots import (
    MIN_SHOWN_PROBABILITY,
    column_label,
    plot_collapse_histogram,
    plot_distribution,
    plot_runs,
)
from modelcollapse.report import build_sections, render_html, render_markdown
from modelcollapse.theory import collapse_time_law, collapse_time_prediction, expected_l1_to_first

PARTIAL = """id = "partial"
title = "Two partially synthetic loops"
paper = "none"
layout = "runs_grid"
seed = 5
trajectories = 3
theory = ["eq9", "l1_partial"]

[base]
vocab = 12
support = 6
S0 = 0.3
scenario = "partially-synthetic"
N = 20
generations = 6
runs = 8
metrics = ["sigma", "l1_to_first"]

[[axes]]
name = "n"
field = "n"
values = [2, 8]
"""

COLLAPSE = """id = "collapse"
title = "Collapse time against n"
paper = "none"
layout = "collapse_time_vs_n"
seed = 7
generations_per_n = 25
theory = ["eq8", "exact_T", "diffusion_T"]

[base]
vocab = 10
family = "target"
distribution_seed = 2
scenario = "fully-synthetic"
runs = 6
metrics = ["collapsed"]

[[axes]]
name = "p0"
values = [{ key = "a", label = "S0 = 0.4", spec = { S0 = 0.4, support = 5 } }]

[[axes]]
name = "n"
field = "n"
values = [4, 8]
"""


@pytest.fixture
def drawn(monkeypatch):
    """The matplotlib figures the layouts hand to save_figure, by file name (nothing saved)."""
    figs: dict[str, object] = {}

    def keep(fig, path, *, pdf=False, dpi=130):
        figs[Path(path).stem] = fig
        return Path(path)

    monkeypatch.setattr(figures, "save_figure", keep)
    yield figs
    plt.close("all")


def _run(tmp_path, text: str, name: str):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return run_figure(load_figure(path), tmp_path / "out", progress=False)


# --- Figs. 3 and 4: runs grid ------------------------------------------------------------

def test_drift_panels_overlay_the_exact_expected_l1(tmp_path, drawn):
    run = _run(tmp_path, PARTIAL, "partial")
    axes = np.array(drawn["partial"].axes).reshape(2, 2)             # (metric, cell)
    for j, cell in enumerate(run.figure.cells):
        p0 = run.results[cell.key].data["p0"].values[0]
        (line,) = [ln for ln in axes[1, j].lines if "exact" in ln.get_label()]
        m = line.get_xdata().astype(int)
        assert m[0] == 1 and m[-1] == cell.spec.generations
        expected = [expected_l1_to_first(p0, n=cell.spec.n, N=cell.spec.N, m=int(k)).value
                    for k in m]
        np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12)
        assert line.get_linestyle() == "--"
    assert run.summary["cells"][1]["numbers"]["l1_first_exact_final"] == pytest.approx(
        expected[-1])


def test_metric_rows_share_their_y_axis_and_draw_a_two_se_band(tmp_path, drawn):
    _run(tmp_path, PARTIAL, "partial")
    axes = np.array(drawn["partial"].axes).reshape(2, 2)
    for row in axes:
        assert row[0].get_shared_y_axes().joined(row[0], row[1])
        assert row[0].get_ylim() == row[1].get_ylim()
        for ax in row:
            assert "±2 se" in [c.get_label() for c in ax.collections]


def test_sigma_rows_whose_scales_differ_tenfold_keep_their_own_axes():
    fig, axes = plt.subplots(2, 2, squeeze=False)
    for ax, top in zip(axes.ravel(), (0.02, 0.7, 0.1, 0.2)):
        ax.plot([0, 1], [0, top])
    figures._share_rows(axes, (0, 1))
    assert not axes[0, 0].get_shared_y_axes().joined(axes[0, 0], axes[0, 1])
    assert axes[1, 0].get_shared_y_axes().joined(axes[1, 0], axes[1, 1])
    figures._share_rows(axes, (0,), always=(0,))       # the drift rows: shared whatever
    assert axes[0, 0].get_shared_y_axes().joined(axes[0, 0], axes[0, 1])
    assert axes[0, 1].get_ylim()[1] >= 0.7
    plt.close(fig)


def test_p0_panel_stops_its_log_axis_at_meaningful_probabilities():
    p = np.array([0.83, 0.16, 0.01 - 2e-20, 1e-20, 1e-53, 0.0])
    fig, ax = plt.subplots()
    plot_distribution(ax, p, title="S0 = 0.7")
    low, _ = ax.get_ylim()
    assert low >= MIN_SHOWN_PROBABILITY / 2 and low == pytest.approx(0.01 / 2, rel=1e-6)
    (note,) = [t.get_text() for t in ax.texts]
    q = p[p > 0]
    assert "2 below 1e-06 not shown" in note
    assert f"exp(H) = {np.exp(-np.sum(q * np.log(q))):.3g}" in note and "5 tokens" in note
    plt.close(fig)


# --- histograms -----------------------------------------------------------------------------

def test_collapse_histogram_ticks_are_whole_numbers():
    result = simulate(runs=4, generations=40, n=3, vocab=6, support=3, S0=0.4, seed=1,
                      progress=False)
    fig, ax = plt.subplots()
    plot_collapse_histogram(ax, result)
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_yticks())
    assert all(float(t).is_integer() for t in ax.get_xticks())
    plt.close(fig)


def test_a_loop_that_never_collapses_gets_a_note_not_an_empty_panel():
    result = simulate(runs=5, generations=4, n=50, N=50, vocab=8, support=8, S0=0.2,
                      scenario="partially-synthetic", seed=2, progress=False)
    assert np.isnan(result.data["collapse_time"].values).all()
    fig, ax = plt.subplots()
    plot_collapse_histogram(ax, result)
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "no run collapsed" in texts and "within 4 generations" in texts
    assert "5 of 5 censored" in texts
    plt.close(fig)


def test_plot_runs_band_is_two_standard_errors():
    result = simulate(runs=10, generations=5, seed=3, progress=False)
    fig, ax = plt.subplots()
    plot_runs(ax, result, "sigma")
    mean, se = result.mean("sigma")
    (band,) = [c for c in ax.collections if c.get_label() == "±2 se"]
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.max() == pytest.approx(np.nanmax(mean + 2 * se))
    plt.close(fig)


# --- Fig. 2 ---------------------------------------------------------------------------------

def test_fig2_shows_the_diffusion_as_a_relative_difference(tmp_path, drawn):
    run = _run(tmp_path, COLLAPSE, "collapse")
    axes = np.array(drawn["collapse"].axes).reshape(3, 1)[:, 0]       # p(0), T, relative
    assert not [ln for ln in axes[1].lines if "Littler" in ln.get_label()]
    (line,) = [ln for ln in axes[2].lines if "Littler" in ln.get_label()]
    p0 = run.results[run.figure.cells[0].key].data["p0"].values[0]
    n = line.get_xdata().astype(int)
    exact = np.array([collapse_time_law(p0, n=int(k)).mean for k in n])
    littler = np.array([collapse_time_prediction(p0, n=int(k), method="littler") for k in n])
    np.testing.assert_allclose(line.get_ydata(), 100 * (littler - exact) / exact, rtol=1e-9)
    assert "%" in axes[2].get_ylabel()


# --- Fig. 6 ---------------------------------------------------------------------------------

def test_quick_fig6_sets_the_full_horizon_beside_the_short_one():
    quick, full = load_figure("fig6", quick=True), load_figure("fig6")
    assert quick.cell("K10").spec.generations == 150
    assert quick.cell("K10").full_generations == full.cell("K10").spec.generations == 500
    fig2 = load_figure("fig2", quick=True).cell("S0-0.1_n50")
    assert fig2.full_generations == fig2.spec.generations == 25 * 50


def test_quick_verdicts_that_need_the_full_horizon_are_not_called_failures():
    quick, full = load_figure("fig6", quick=True), load_figure("fig6")
    censored = {"T_mean": 109.6, "T_mean_se": 4.0, "censored_runs": 12, "runs": 20}
    why = runner.needs_full_run("T_mean", censored, quick.cell("K10"), quick)
    assert why == "12 of 20 runs censored at 150 of 500 generations"
    assert runner.needs_full_run("T_mean", {**censored, "censored_runs": 0},
                                 quick.cell("K10"), quick) is None
    assert runner.needs_full_run("T_mean", censored, full.cell("K10"), full) is None
    assert runner.needs_full_run("collapsed_fraction", {}, quick.cell("pool"), quick)
    rows = runner._mark_quick(quick, quick.cell("K10"), censored,
                              runner.compare_to_paper(censored, {"T_mean": 216}, 100))
    assert rows[0]["agrees"] is None and rows[0]["z"] < -3
    cells = [{"tags": {"reading": "even"}, "comparison": rows},
             {"tags": {"reading": "literal"},
              "comparison": [{"quantity": "T_mean", "z": None, "agrees": False}]}]
    even, literal = runner._verdict(quick, cells)
    assert even["agrees"] is None and even["needs_full_run"]
    assert literal["agrees"] is False                 # wrong at any horizon: still a failure
    summary = {"figure": "fig6", "title": "t", "mode": "quick", "simulated_cells": [],
               "cells": [{"label": "K = 10", **cells[0]}], "verdict": [even, literal]}
    text = _text([SimpleNamespace(summary=summary)], None, 1.0, (Path("r.md"), Path("r.html")))
    assert "reading 'even': differs" not in text and "need the full run" in text
    assert "needs the full run: 12 of 20 runs censored" in text
    assert "reading 'literal': differs from the paper" in text


# --- report ---------------------------------------------------------------------------------

def _summary(mode: str = "full") -> dict:
    numbers = {"runs": 100, "T_mean": 160.2, "T_mean_se": 9.1, "censored_runs": 53,
               "collapsed_runs": 47, "absorption_predicted": 621.7}
    return {"figure": "fig6", "title": "Most recent K models", "paper": "Figure 6",
            "mode": mode, "report": ["T_mean", "censored_runs", "absorption_predicted"],
            "files": [], "notes": "", "seconds": {},
            "cells": [{"label": "K = 10", "tags": {}, "numbers": numbers,
                       "comparison": [{"quantity": "T_mean", "paper": 216.0, "ours": 160.2,
                                       "se": 9.1, "z": -6.1, "agrees": False}]}],
            "verdict": []}


def test_report_has_contents_aligned_columns_and_a_censoring_warning(tmp_path):
    sections = build_sections([_summary()])
    md = render_markdown(sections)
    assert "## Contents" in md and "- [fig6: Most recent K models](#fig6)" in md
    assert '<a id="fig6"></a>' in md and '<a id="paper-numbers"></a>' in md
    assert "| :--- | ---: | ---: | ---: |" in md                        # cell | numbers
    assert "| 160.2 ± 9.1 ⚠ |" in md
    assert "mean T (runs that collapsed) is over the 47 runs that collapsed; 53 of 100 " \
           "censored" in md
    html = render_html(sections, tmp_path)
    assert '<nav>' in html and '<a href="#fig6">' in html
    assert '<td class="text">K = 10</td>' in html and "<td>160.2 ± 9.1 ⚠</td>" in html
    assert 'class="warning"' in html and "53 of 100 censored" in html
    clean = _summary()
    clean["cells"][0]["numbers"]["censored_runs"] = 0
    assert "⚠" not in render_markdown(build_sections([clean]))


def test_report_calls_quick_numbers_that_need_the_full_run_so():
    s = _summary("quick")
    s["cells"][0]["comparison"][0].update(agrees=None, needs_full_run="53 of 100 runs censored "
                                                                     "at 150 of 500 generations")
    s["verdict"] = [{"tag": "reading", "value": "even", "max_abs_z": 6.1, "agrees": None,
                     "needs_full_run": True, "quantities": ["T_mean"]}]
    md = render_markdown(build_sections([s]))
    assert "| needs full run |" in md and "does not agree" not in md
    assert "reading 'even': not judged in quick mode" in md


# --- results plot ---------------------------------------------------------------------------

def test_results_plot_labels_its_axes_and_takes_xlim(tmp_path, monkeypatch, capsys):
    from concurrent.futures import ThreadPoolExecutor

    import modelcollapse.plots as plots
    from modelcollapse.sweep import SweepSpec, run_sweep

    out = tmp_path / "sweep"
    with ThreadPoolExecutor(1) as pool:
        run_sweep(SweepSpec(runs=6, generations=5, seed=3, vocab=10, support=5, S0=0.4,
                            axes={"n": [4, 8]}), out, executor=pool, store="netcdf",
                  progress=False)
    kept = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **kw: kept.append(fig))
    assert main(["results", "plot", str(out), "collapse_time_median", "--x", "n"]) == 0
    ax = kept[-1].axes[0]
    assert ax.get_xlabel() == column_label("n") == "synthetic sample size n"
    assert ax.get_ylabel() == "collapse time T, median"
    assert main(["results", "plot", str(out), "sigma", "--x", "generation", "--hue", "n",
                 "--xlim", "1", "4"]) == 0
    ax = kept[-1].axes[0]
    assert ax.get_xlim() == (1.0, 4.0) and ax.get_xlabel() == "generation m"
    assert ax.get_legend().get_title().get_text() == "synthetic sample size n"
    assert main(["results", "plot", str(out), "sigma", "--x", "generation",
                 "--xlim", "4", "1"]) == 2
    capsys.readouterr()
