"""The Python workflow of modelcollapse, start to finish: simulate, theory, a sweep, a figure.

    python examples/python_workflow.py                    # the full sizes, about 12 s on 2 cores
    python examples/python_workflow.py --runs 50          # every step, smaller
    python examples/python_workflow.py --markdown examples/python_workflow.md

Four steps, each a function below:

1. simulate the partially synthetic loop from ``examples/simulate.toml`` and read its
   statistics as a pandas table (``Result.to_dataframe``);
2. set the simulation beside theory: S_m = E‖p(m)‖₂² (Theorem 2, eq. 9), E‖p(m) − p(1)‖₁, and
   the exact law of the fully synthetic collapse time T (§3.1);
3. sweep the support size s̃ of p(0) (``examples/sweep_support.toml``) and read its Parquet
   tables;
4. a figure of our own from the files alone: the Parquet tables of the sweep and the Zarr
   store of the simulation (as xarray).

Everything is written under ``--out`` (default ``results/python_workflow``), the figure to
``--figure`` (default ``examples/python_workflow.png``). ``--markdown PATH`` also writes the
code of every step with the output it printed.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

import modelcollapse as mc
from modelcollapse import theory
from modelcollapse.sweep import SweepSpec, load_sweep_spec, run_sweep

HERE = Path(__file__).resolve().parent


def step_simulate(args) -> tuple[mc.SimulationSpec, mc.Result]:
    """1. Simulate, and read the result as a pandas table."""
    spec = mc.load_spec(HERE / "simulate.toml", runs=args.runs)  # keyword arguments override keys
    result = mc.simulate(spec)
    result.save(args.out / "simulate.zarr")

    stats = result.to_dataframe()  # one row per context and generation
    print(stats.loc[[0, 1, 2, 10, 50], ["generation", "sigma_mean", "sigma_se",
                                        "l1_to_first_mean", "l1_to_first_se", "count"]]
          .to_string(index=False))
    runs = result.to_dataframe(per_run=True)  # one row per run and context
    print(f"\n{len(runs)} runs; collapsed: {int((~runs['collapse_censored']).sum())}; "
          f"final σ of run 0: {runs['sigma_final'][0]:.4f}")
    return spec, result


def step_theory(spec: mc.SimulationSpec, result: mc.Result) -> None:
    """2. Simulation beside theory, from the same p(0) and scenario."""
    p0 = result.data["p0"].values[0]  # (vocab,): the p(0) the loop started from
    stats = result.to_dataframe()
    m = np.array([1, 2, 5, 20, 50])  # p(1) is the first generation: l1_to_first is 0 there
    rows = stats.set_index("generation").loc[m]
    # S_m = E‖p(m)‖₂², Theorem 2 (eq. 9, sign corrected); z = (simulation − theory) / se.
    s_m = theory.expected_sigma(p0, scenario=spec.build_scenario(), m=m)
    l1 = [theory.expected_l1_to_first(p0, n=spec.n, N=spec.N, m=int(g)).value for g in m]
    table = pd.DataFrame({
        "m": m,
        "sigma sim": rows["sigma_mean"].to_numpy(), "S_m (eq. 9)": s_m,
        "z": (rows["sigma_mean"].to_numpy() - s_m) / rows["sigma_se"].to_numpy(),
        "l1 sim": rows["l1_to_first_mean"].to_numpy(), "l1 exact": l1,
    })
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))

    # Fully synthetic, the same p(0) and n: the exact law of T against 2000 simulated runs.
    law = theory.collapse_time_law(p0, n=spec.n)
    low, high = theory.collapse_time_bounds(p0, n=spec.n)
    fully = mc.simulate(p0=p0, scenario=mc.make_scenario("fully-synthetic", n=spec.n),
                        runs=2000, generations=2000, seed=2, metrics=("sigma",))
    summary = fully.summary()
    print(f"\nfully synthetic, n = {spec.n}: E[T] exact {law.mean:.2f} (sd {law.sd:.2f}); "
          f"eq. 8 bounds [{low:.1f}, {high:.1f}]; simulated "
          f"{summary['collapse_time_mean']:.2f} ± {summary['collapse_time_se']:.2f} (se), "
          f"{summary['censored_runs']} runs censored")


def step_sweep(args) -> Path:
    """3. Sweep the support size s̃ of p(0); read the Parquet tables with pandas."""
    spec = load_sweep_spec(HERE / "sweep_support.toml")
    spec = SweepSpec(**(spec.model_dump() | {"runs": args.runs}))  # frozen: build anew to change
    out = args.out / "sweep_support"
    outcome = run_sweep(spec, out, workers=args.workers, progress=False)
    points = outcome.points()  # one row per grid point; outcome.generations(): per generation
    # The exact E[T] for each uniform p(0), beside the simulated mean and median.
    points["T_exact"] = [theory.collapse_time_law(np.full(s, 1.0 / s), n=int(n)).mean
                         for s, n in zip(points["support"], points["n"])]
    print(points[["support", "collapse_time_mean", "collapse_time_se", "T_exact",
                  "collapse_time_median", "censored_runs"]]
          .to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    return out


def step_plot(args, sweep: Path) -> None:
    """4. A figure of our own, from the files alone (Parquet with pandas, Zarr with xarray)."""
    points = pd.read_parquet(sweep / "points.parquet").sort_values("support")
    generations = pd.read_parquet(sweep / "generations.parquet")
    run = mc.Result.load(args.out / "simulate.zarr")  # or, as plain xarray:
    data: xr.Dataset = run.data  # xr.open_zarr(args.out / "simulate.zarr", zarr_format=3)

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    a.errorbar(points["support"], points["collapse_time_mean"],
               yerr=2 * points["collapse_time_se"], fmt="o", label="simulated E[T] ± 2 se")
    support = np.unique(np.geomspace(2, points["support"].max(), 40).astype(int))
    n = int(points["n"].iloc[0])
    a.plot(support, [theory.collapse_time_law(np.full(s, 1.0 / s), n=n).mean for s in support],
           "k-", lw=1, label="exact E[T]")
    a.set(xscale="log", xlabel="support s̃ of p(0) (uniform)", ylabel="collapse time T",
          title=f"fully synthetic, n = {n}")
    a.legend()

    for support_value, rows in generations.groupby("support"):
        b.plot(rows["generation"], rows["collapsed_mean"], label=f"s̃ = {support_value}")
    b.set(xlim=(0, 5 * n), xlabel="generation m", ylabel="fraction collapsed ρ_m",
          title="P(T ≤ m) per support")
    b.legend(fontsize=7, ncol=2)

    sigma = data["sigma_trajectory"].isel(context=0)  # (trajectory_run, generation)
    c.plot(data["generation"], sigma.values.T, color="0.75", lw=0.6)
    mean = data["sigma_mean"].isel(context=0)
    c.plot(data["generation"], mean, "C0", label="mean of every run")
    n, N = run.spec["n"], run.spec["N"]  # the spec the result was simulated from, a dict
    s_m = theory.expected_sigma(data["p0"].values[0], m=data["generation"].values,
                                scenario=mc.make_scenario(run.spec["scenario"], n=n, N=N))
    c.plot(data["generation"], s_m, "k--", lw=1, label="S_m, Theorem 2")
    c.set(xlabel="generation m", ylabel="σ_m = ‖p(m)‖₂²",
          title=f"partially synthetic, n = {n}, N = {N}")
    c.legend()
    fig.savefig(args.figure, dpi=110)
    print(f"figure: {args.figure.name} ({sigma.sizes['trajectory_run']} kept runs in panel 3)")


STEPS = ("step_simulate", "step_theory", "step_sweep", "step_plot")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs per simulation and sweep "
                        "point (default 1000, as the spec files say)")
    parser.add_argument("--workers", type=int, default=None, help="sweep processes "
                        "(default: every core)")
    parser.add_argument("--out", type=Path, default=Path("results/python_workflow"))
    parser.add_argument("--figure", type=Path, default=HERE / "python_workflow.png")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="also write each step's code and printed output here")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    outputs = {}
    for name in STEPS:
        print(f"## {globals()[name].__doc__}")
        with contextlib.redirect_stdout(io.StringIO()) as buffer:
            if name == "step_simulate":
                spec, result = step_simulate(args)
            elif name == "step_theory":
                step_theory(spec, result)
            elif name == "step_sweep":
                sweep = step_sweep(args)
            else:
                step_plot(args, sweep)
        outputs[name] = buffer.getvalue()
        print(outputs[name])
    if args.markdown is not None:
        args.markdown.write_text(render(args, outputs), encoding="utf-8")


def render(args, outputs: dict[str, str]) -> str:
    """The steps' code and printed output as Markdown."""
    command = "python examples/python_workflow.py" + (
        f" --runs {args.runs}" if args.runs != 1000 else "")
    parts = [
        "# The Python workflow, run\n",
        f"The code of [`python_workflow.py`](python_workflow.py), step by step, with what each "
        f"step printed when run as `{command}`. The numbers are those of the seeds in "
        f"[`simulate.toml`](simulate.toml) and [`sweep_support.toml`](sweep_support.toml).\n",
    ]
    for name in STEPS:
        function = globals()[name]
        parts.append(f"## {function.__doc__}\n")
        parts.append(f"```python\n{inspect.getsource(function).rstrip()}\n```\n")
        parts.append(f"```text\n{outputs[name].rstrip()}\n```\n")
    figure = os.path.relpath(args.figure.resolve(), args.markdown.resolve().parent)
    parts.append(f"![The figure of step 4]({Path(figure).as_posix()})\n")
    return "\n".join(parts)


if __name__ == "__main__":
    main()
