"""``modelcollapse reproduce``: the paper's figures, at the paper's scale, with a report."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .._files import check_output_folder
from ._common import echo_json, fail, input_errors

FIG5 = "fig5"
#: Fig. 5 with n-gram models of the text (modelcollapse.ngram): seconds on a CPU.
FIG5_NGRAM = "fig5-ngram"


def _resolve(names: tuple[str, ...], with_fig5: bool) -> tuple[list[str], bool, bool]:
    """Statistical figures (names, or paths of .toml specs) to run, whether to run Fig. 5
    (the transformer) too, and whether fig5-ngram."""
    from ..experiments import resolve_figures

    fig5 = FIG5 in names or (with_fig5 and "all" in names)
    files = [n for n in names if n.endswith(".toml")]
    named = [n for n in names if n not in (FIG5, FIG5_NGRAM) and n not in files]
    return (resolve_figures(named) if named else []) + files, fig5, FIG5_NGRAM in names


#: fig5-ngram with --quick: fewer generations and smaller corpora.
QUICK_NGRAM = {"generations": 4, "tokens": 100_000}


def _text(runs, fig5_summary: Path | None, seconds: float, report: tuple[Path, Path],
          ngram_numbers: dict | None = None) -> str:
    lines = []
    for run in runs:
        s = run.summary
        lines.append(f"{s['figure']}  {s['title']}  ({s['mode']}; simulated "
                     f"{len(s['simulated_cells'])} of {len(s['cells'])} cells)")
        for cell in s["cells"]:
            for row in cell["comparison"]:
                z = "∞" if row["z"] is None else f"{row['z']:+.1f}"
                ours = "—" if row["ours"] is None else f"{row['ours']:.4g}"
                line = (f"    {cell['label']:<28} {row['quantity']:<20} ours {ours:>8}  "
                        f"paper {row['paper']:g}  z {z}")
                if row.get("needs_full_run"):  # quick mode: the horizon, not the model
                    line += f"  (needs the full run: {row['needs_full_run']})"
                lines.append(line)
        for v in s["verdict"]:
            word = ("agrees with" if v["agrees"] else "differs from" if v["agrees"] is False
                    else "not judged: some numbers need the full run (without --quick) to "
                         "compare with")
            lines.append(f"    {v['tag']} '{v['value']}': {word} the paper")
    if fig5_summary is not None:
        lines.append(f"fig5  written to {fig5_summary.parent}")
    if ngram_numbers is not None:
        lines.append(f"fig5-ngram  ({ngram_numbers['seconds']:.1f} s): ‖p(G) − p(1)‖₁, fully "
                     f"synthetic minus each mixture (paired over the contexts)")
        for k, row in ngram_numbers["orders"].items():
            full = row["l1_at_last"]["fully synthetic"]
            diffs = "  ".join(f"{label}: {d['mean']:+.3f} (z {d['z']:+.1f})"
                              for label, d in row["fully_minus"].items())
            lines.append(f"    k = {k}: fully synthetic {full['mean']:.3f} ± {full['se']:.3f};"
                         f"  {diffs}")
    lines.append(f"report: {report[0]}, {report[1]}  ({seconds:.1f} s)")
    return "\n".join(lines)


#: Flags only Fig. 5 (the transformer) reads, and those fig5-ngram reads too.
FIG5_FLAGS = ("preset", "device")
TEXT_FLAGS = ("corpus", "download")


def _check_fig5_flags(fig5: bool, ngram: bool, with_fig5: bool,
                      figures: tuple[str, ...]) -> None:
    """Refuse the text figures' flags when none of them runs: they would do nothing."""
    if with_fig5 and "all" not in figures:
        raise ValueError("The 'with-fig5' parameter of reproduce applies to 'all' only; name "
                         "fig5 itself beside other figures.")
    context = click.get_current_context()
    for names, runs, which in ((FIG5_FLAGS, fig5, "fig5"),
                               (TEXT_FLAGS, fig5 or ngram, "fig5 and fig5-ngram")):
        for name in names:
            if not runs and context.get_parameter_source(name) is not \
                    click.core.ParameterSource.DEFAULT:
                raise ValueError(f"The '{name}' parameter of reproduce applies to {which} "
                                 f"only, which is not among the figures asked for.")


@click.command("reproduce")
@click.argument("figures", nargs=-1, required=True)
@click.option("--quick", is_flag=True, help="Fewer runs and generations: seconds, not minutes.")
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Folder for results, plots and the report.")
@click.option("--replot", is_flag=True,
              help="Re-draw figures and report from saved results; simulate nothing.")
@click.option("--runs", type=int, help="Runs per cell instead of the spec's (paper: 100).")
@click.option("--with-fig5", is_flag=True, help="With 'all': also the transformer (Fig. 5).")
@click.option("--preset", type=click.Choice(["auto", "cpu", "paper", "tiny"]), default="auto",
              show_default=True, help="Fig. 5 transformer settings.")
@click.option("--device", default="auto", show_default=True,
              help="Fig. 5: cpu, cuda, cuda:N, or auto (cuda when available).")
@click.option("--corpus", type=click.Path(dir_okay=False),
              help="fig5, fig5-ngram: tiny Shakespeare file.")
@click.option("--download", is_flag=True,
              help="fig5, fig5-ngram: download the corpus if not cached.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: on a TTY).")
def command(figures, quick, out, replot, runs, with_fig5, preset, device, corpus, download, fmt,
            progress) -> None:
    """Reproduce the paper's figures: fig1, fig2, fig3, fig4, fig6 or all (and fig5, and
    fig5-ngram: Fig. 5 with n-gram models, seconds on a CPU); or run figure specs given as
    .toml files.

    Results, plots (PNG and PDF) and summary.json go to OUT/<figure>/, the report to
    OUT/report.md and OUT/report.html. A rerun loads the cells already saved.
    """
    from ..experiments import load_figure, reproduce_fig5, run_figure
    from ..experiments.runner import MissingResultError
    from ..report import write_report

    started = time.perf_counter()
    with input_errors():
        names, fig5, ngram = _resolve(tuple(figures), with_fig5)
        if runs is not None and runs < 1:
            raise ValueError(f"The 'runs' parameter of reproduce must be an int in the range "
                             f"[1, inf). Got {runs} instead.")
        check_output_folder(out, "out")
        _check_fig5_flags(fig5, ngram, with_fig5, figures)
        if ngram and replot:
            raise ValueError("fig5-ngram cannot be re-plotted without its runs; run it "
                             "without --replot (it takes seconds).")
        if ngram:
            from ..corpus import load_text

            ngram_text = load_text(corpus, download=download)
        specs = [load_figure(name, quick=quick, runs=runs) for name in names]
        if fig5 and not replot:  # the transformer's flags, corpus and size, before any work
            try:
                from ..lm.figure5 import check_figure5
            except ImportError as exc:
                fail(f"fig5 needs the 'lm' extra (PyTorch): {exc}")
            source = click.get_current_context().get_parameter_source("preset")
            if quick and preset != "tiny" and source is not click.core.ParameterSource.DEFAULT:
                raise ValueError(f"The 'preset' parameter of reproduce does nothing with "
                                 f"--quick, which runs fig5 at preset 'tiny'. Got {preset!r} "
                                 f"instead.")
            from ..lm.presets import preset_for_device

            fig5_preset = "tiny" if quick else preset_for_device(preset, device)
            check_figure5(Path(out) / "fig5", preset=fig5_preset,
                          device=device, corpus=corpus, download=download, where="reproduce")
    done = []
    for spec in specs:
        try:
            done.append(run_figure(spec, out, replot=replot, progress=progress))
        except MissingResultError as exc:  # --replot before any run: the user's to fix
            fail(str(exc))
    fig5_summary = None
    if fig5:
        if replot:
            fail("fig5 cannot be re-plotted without its runs; run it without --replot")
        try:
            fig5_summary = reproduce_fig5(out, preset=fig5_preset,
                                          device=device, corpus=corpus, download=download,
                                          progress=progress)
        except ImportError as exc:
            fail(f"fig5 needs the 'lm' extra (PyTorch): {exc}")
        except OSError as exc:
            fail(str(exc).splitlines()[0])
    ngram_numbers = None
    if ngram:
        from ..ngram import run_figure5 as run_fig5_ngram

        ngram_numbers = run_fig5_ngram(Path(out) / FIG5_NGRAM, text=ngram_text,
                                       **(QUICK_NGRAM if quick else {}),
                                       progress=progress).numbers
    report = write_report(out)
    seconds = time.perf_counter() - started
    if fmt == "json":
        echo_json({"figures": [run.summary for run in done],
                   "fig5": str(fig5_summary) if fig5_summary else None,
                   "fig5_ngram": ngram_numbers,
                   "report": [str(p) for p in report], "seconds": round(seconds, 3)})
    else:
        click.echo(_text(done, fig5_summary, seconds, report, ngram_numbers))
