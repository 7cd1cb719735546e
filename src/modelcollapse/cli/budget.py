"""``modelcollapse budget``: the largest synthetic n that keeps E‖p(m) − p(1)‖₁ ≤ ε."""

from __future__ import annotations

import math

import click

from .._validation import check_float, check_int
from ._common import echo_json, input_errors
from .theory import p0_from_flags, p0_options


def _pair(a: float, b: float) -> tuple[str, str]:
    """a and b with as many decimals as it takes to tell them apart (at least 4 significant
    digits, at most 15), so that the values at n and n + 1 never print alike."""
    scale = max(abs(a), abs(b))
    if scale == 0 or not math.isfinite(scale):
        return f"{a:.4g}", f"{b:.4g}"
    decimals = max(0, 3 - math.floor(math.log10(scale)))
    gap = abs(a - b)
    if gap > 0:
        decimals = max(decimals, 1 - math.floor(math.log10(gap)))
    decimals = min(decimals, 15)
    return f"{a:.{decimals}f}", f"{b:.{decimals}f}"


def format_budget(result: dict) -> str:
    n_pred = result["n_prediction"]
    m = result["generations"]
    lines = [
        f"vocabulary s = {result['vocab']}, real corpus N = {result['N']}, "
        f"ε = {result['epsilon']:g}, generation m = {m if m is not None else 'all (m → ∞)'}",
        f"  {'eq. 11 (paper, closed form)':<36} n ≤ {result['n_eq11']}",
        f"  {'Theorem 3 bound inverted':<36} n ≤ {result['n_theorem3']}",
    ]
    if n_pred is None:
        lines.append(f"  {'prediction (' + result['prediction_method'] + ')':<36} unlimited: "
                     f"even n → ∞ gives E‖p(m)−p(1)‖₁ = {result['prediction_at_n']:.4g} ≤ ε")
    else:
        at_n, at_next = _pair(result["prediction_at_n"], result["prediction_at_next"])
        lines.append(f"  {'prediction (' + result['prediction_method'] + ')':<36} n ≤ {n_pred}"
                     f"   (E‖·‖₁ = {at_n} at n, {at_next} at n + 1)")
        lines.append(f"  {'synthetic share n/(N + n)':<36} {result['synthetic_share']:.2%} "
                     f"of each training set")
    if result["simulation"]:
        lines.append(f"  simulated at generation {result['simulated_generation']}: "
                     f"{result['simulated_generation_reason']}")
    for sim in result["simulation"]:
        mean, predicted = _with_se(sim["mean"], sim["se"]), _with_se(sim["predicted"], sim["se"])
        lines.append(f"  {'simulation at n = ' + str(sim['n']):<36} "
                     f"E‖p({sim['generation']})−p(1)‖₁ = {mean} ± {sim['se']:.2g} "
                     f"(se, {sim['n_runs']} runs); predicted {predicted} "
                     f"(z = {sim['z_prediction']:+.2f}); z vs ε = {sim['z']:+.2f}")
    if result["consistent"] is not None:
        verdict = "consistent" if result["consistent"] else "NOT consistent"
        lines.append(f"  simulation {verdict} with the prediction at the simulated generation "
                     f"(|z| < 3 at n and n + 1)")
    lines.append(f"  scope: {result['scope']}")
    lines.append(f"  ε: {result['epsilon_meaning']}")
    return "\n".join(lines)


def _with_se(value: float, se: float) -> str:
    """``value`` to the decimal of the second significant digit of its standard error."""
    if not (math.isfinite(se) and se > 0):
        return f"{value:.6g}"
    decimals = max(0, 1 - math.floor(math.log10(se)))
    return f"{value:.{decimals}f}"


@click.command("budget",
               short_help="Largest safe synthetic n per generation next to N real samples.")
@click.option("--N", "N", type=int, help="Real corpus size N (required).")
@click.option("--real", "real", type=int, hidden=True, help="Old name of --N.")
@click.option("--epsilon", type=float, required=True,
              help="Tolerance ε on E‖p(m) − p(1)‖₁ (the expected total variation distance "
                   "is ε/2).")
@click.option("--generations", "m", type=int,
              help="Generation m.  [default: every generation (m → ∞)]")
@p0_options
@click.option("--p0-seed", "p0_seed", type=int,
              help="Seed of p(0) for the random families.  [default: --seed]")
@click.option("--runs", type=int, default=100, show_default=True,
              help="Simulation runs at n and n + 1.")
@click.option("--seed", type=int, default=0, show_default=True, help="Simulation seed.")
@click.option("--simulate/--no-simulate", default=True, show_default=True,
              help="Also simulate the loop at n and n + 1.")
@click.option("--progress/--no-progress", default=None,
              help="One line per stage on stderr.  [default: on a TTY]")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def command(N, real, epsilon, m, vocab, support, S0, family, p0, p0_seed, runs, seed,
            simulate, progress, fmt) -> None:
    """Largest synthetic n per generation next to N real samples: eq. 11, Theorem 3, the
    sharper prediction, and a simulation at that n."""
    from ..theory import synthetic_budget

    where = "budget"
    if N is not None and real is not None and N != real:
        raise click.UsageError("Give the real corpus size once: --N (--real is its old name).")
    N = N if N is not None else real
    if N is None:
        raise click.UsageError("Missing option '--N'.")
    with input_errors():
        seed = check_int(seed, "seed", low=0, where=where)
        p = p0_from_flags(where, vocab=vocab, support=support, S0=S0, family=family, p0=p0,
                          distribution_seed=p0_seed, seed=seed)
        N = check_int(N, "N", low=1, where=where)
        epsilon = check_float(epsilon, "epsilon", low=0.0, low_open=True, where=where)
        if m is not None:
            m = check_int(m, "generations", low=2, where=where)
        runs = check_int(runs, "runs", low=2, where=where)
    result = synthetic_budget(p, N=N, epsilon=epsilon, m=m, simulate=simulate, n_runs=runs,
                              seed=seed, progress=progress).to_dict()
    if fmt == "json":
        echo_json(result)
    else:
        click.echo(format_budget(result))
