"""``modelcollapse theory``: the paper's formulas and the sharper predictions for one setting."""

from __future__ import annotations

import math

import click
import numpy as np

from .._validation import check_float, check_int
from ..distributions import load_distribution, target_distribution, uniform_distribution
from ._common import echo_json, input_errors

#: Seed of p(0) when it is built from --support/--S0 and no --p0-seed is given.
DEFAULT_P0_SEED = 0


def p0_from_flags(vocab: int | None, support: int | None, S0: float | None, p0: str | None,
                  p0_seed: int, where: str) -> np.ndarray:
    """p(0) from a file, from (vocab, support, S0) by ``target_distribution``, or uniform on
    the vocabulary when only --vocab is given. One distribution (vocab,)."""
    if p0 is not None:
        if support is not None or S0 is not None:
            raise ValueError(f"The 'p0' parameter of {where} excludes 'support' and 'S0'. "
                             f"Got both instead.")
        dist = load_distribution(p0)
        if dist.ndim != 1:
            raise ValueError(f"The 'p0' parameter of {where} must hold one distribution "
                             f"(vocab,). Got shape {dist.shape} instead.")
        if vocab is not None and vocab != dist.size:
            raise ValueError(f"The 'vocab' parameter of {where} must match the p0 file "
                             f"({dist.size} tokens). Got {vocab} instead.")
        return dist
    if vocab is None:
        raise ValueError(f"The 'vocab' parameter of {where} is required (or give --p0).")
    vocab = check_int(vocab, "vocab", low=2, where=where)
    if S0 is None and support is None:
        return uniform_distribution(vocab)
    if S0 is None:
        return uniform_distribution(vocab, support=support)
    support = vocab if support is None else support
    return target_distribution(vocab, support, S0, seed=p0_seed)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _listed(values: np.ndarray) -> list[float | None]:
    return [_finite(float(v)) for v in values]


def theory_report(p: np.ndarray, n: int, N: int | None, m: int | None,
                  epsilon: float | None) -> dict:
    """Every applicable quantity for p(0) = p, n, N (partially synthetic when given),
    generation m and ε, as a JSON-ready dict (non-finite numbers become None)."""
    from ..theory import diffusion, paper, partial
    from ..theory.genealogy import collapse_time_law

    S0 = float(np.sum(p * p))
    support = int(np.count_nonzero(p))
    out: dict = {"vocab": int(p.size), "support": support, "S0": S0, "n": n, "N": N,
                 "generations": m}
    nontrivial = support >= 2
    # --- fully synthetic (Theorem 1, Proposition 1, diffusion, exact law) ---
    law = collapse_time_law(p, n, max_generations=m) if m is not None else collapse_time_law(p, n)
    if nontrivial:
        lower, upper = paper.collapse_time_bounds(S0, support, n)
        out["collapse_time_lower_eq8"] = lower
        out["collapse_time_upper_eq8"] = upper
    out["collapse_time_exact_mean"] = float(law.mean)
    out["collapse_time_exact_sd"] = float(law.sd)
    out["collapse_time_littler"] = float(diffusion.littler_collapse_time(p, n))
    out["collapse_time_prediction"] = float(diffusion.collapse_time_prediction(p, n))
    out["collapse_time_sd_prediction"] = float(diffusion.collapse_time_sd_prediction(p, n))
    gens = np.arange(law.survival.size)
    out["collapse_prob"] = _listed(law.collapse_prob)
    out["expected_support"] = _listed(law.expected_support)
    out["sigma_eq6"] = _listed(paper.expected_sigma_fully(S0, n, gens))
    if nontrivial and gens.size > 1:
        lo, hi = paper.collapse_prob_bounds(S0, support, n, gens[1:])
        out["collapse_prob_lower_eq7"] = [None, *_listed(lo)]
        out["collapse_prob_upper_eq7"] = [None, *_listed(hi)]
    # --- partially synthetic (Theorem 2-4, eq. 10-11) ---
    if N is not None:
        l2sq = partial.expected_l2sq_deviation(S0, n, N, m)
        # S_m = S_1 + E‖p(m) − p(1)‖₂², which also gives the limit m → ∞.
        out["sigma_eq9"] = float(paper.expected_sigma_partial(S0, n, N, 1)) + l2sq
        out["l2sq_deviation_exact"] = l2sq
        dev = partial.expected_l1_deviation(p, n, N, m)
        out["l1_deviation_prediction"] = dev.value
        out["l1_deviation_method"] = dev.method
        out["l1_deviation_jensen_upper"] = dev.jensen_upper
        out["G_regime_eq10"] = paper.G_regime(n, p.size)
        out["log_G_eq10"] = _finite(paper.log_G(n, p.size))
        out["log_theorem3_bound"] = _finite(paper.log_theorem3_bound(n, N, p.size))
        lam, lam_se = paper.expected_lambda_empirical(p, N, n_draws=200, seed=0)
        out["expected_lambda1"] = lam
        out["expected_lambda1_se"] = lam_se
        out["zeta"] = paper.zeta(lam, n, N)
        out["log_theorem4_bound"] = _finite(paper.log_theorem4_bound(n, N, p.size, lam))
    part = paper.pi_p(p)
    out["pi_p_eq12"] = part.value
    out["pi_p_bracket"] = [part.lower, part.upper]
    out["pi_p_exact"] = part.exact
    out["phi_of_pi_p"] = _finite(float(paper.phi(part.upper)))
    if epsilon is not None:
        out["epsilon"] = epsilon
        out["log_lemma1_bound"] = _finite(paper.log_lemma1_bound(n, p.size, epsilon, part.upper))
        out["log_weissman_bound"] = _finite(paper.log_weissman_bound(n, p.size, epsilon,
                                                                     part.upper))
        if N is not None:
            out["eq11_max_n"] = paper.eq11_max_n(max(p.size, 2), N, epsilon)
            out["largest_safe_n_theorem3"] = paper.largest_safe_n_theorem3(max(p.size, 2), N,
                                                                           epsilon)
    return out


_LABELS = (
    ("S0", "S0 = Σ p_i² of p(0)"),
    ("collapse_time_lower_eq8", "E[T] lower bound (eq. 8)"),
    ("collapse_time_upper_eq8", "E[T] upper bound (eq. 8)"),
    ("collapse_time_exact_mean", "E[T] exact (lineage chain)"),
    ("collapse_time_exact_sd", "sd(T) exact"),
    ("collapse_time_littler", "E[T] diffusion (Littler)"),
    ("collapse_time_prediction", "E[T] corrected diffusion"),
    ("collapse_time_sd_prediction", "sd(T) corrected diffusion"),
    ("sigma_eq9", "S_m partially synthetic (eq. 9)"),
    ("l2sq_deviation_exact", "E‖p(m)−p(1)‖₂² exact"),
    ("l1_deviation_prediction", "E‖p(m)−p(1)‖₁ prediction"),
    ("l1_deviation_method", "  method"),
    ("l1_deviation_jensen_upper", "E‖p(m)−p(1)‖₁ upper bound (Jensen)"),
    ("G_regime_eq10", "case of eq. 10"),
    ("log_G_eq10", "ln G_n(s) (eq. 10)"),
    ("log_theorem3_bound", "ln Theorem 3 bound"),
    ("expected_lambda1", "E[λ1] (Monte Carlo, exact λ per draw)"),
    ("zeta", "ζ (Theorem 4)"),
    ("log_theorem4_bound", "ln Theorem 4 bound"),
    ("pi_p_eq12", "π_p of p(0) (eq. 12)"),
    ("pi_p_exact", "  exact"),
    ("phi_of_pi_p", "φ(π_p)"),
    ("log_lemma1_bound", "ln Lemma 1 bound on P(‖p̂−p‖₁ ≥ ε)"),
    ("log_weissman_bound", "ln Weissman bound on P(‖p̂−p‖₁ ≥ ε)"),
    ("eq11_max_n", "eq. 11 right-hand side"),
    ("largest_safe_n_theorem3", "largest n from Theorem 3"),
)


def format_report(report: dict) -> str:
    head = (f"p(0): vocab {report['vocab']}, support {report['support']}; n = {report['n']}"
            + (f", N = {report['N']}" if report["N"] is not None else "")
            + (f", m = {report['generations']}" if report["generations"] is not None
               else ", m → ∞ (partial)" if report["N"] is not None else ""))
    lines = [head]
    for key, label in _LABELS:
        if key in report and report[key] is not None:
            value = report[key]
            text = f"{value:.6g}" if isinstance(value, float) else str(value)
            lines.append(f"  {label:<40} {text}")
    rho = report["collapse_prob"]
    for q in (0.5, 0.9, 0.99):
        hit = next((i for i, r in enumerate(rho) if r is not None and r >= q), None)
        if hit is not None:
            lines.append(f"  {'first m with ρ_m ≥ ' + str(q) + ' (exact)':<40} {hit}")
    return "\n".join(lines)


@click.command("theory")
@click.option("--vocab", type=int, help="Vocabulary size s.")
@click.option("--support", type=int, help="Support size of p(0).")
@click.option("--S0", "S0", type=float, help="Σ p_i² of p(0) (target_distribution).")
@click.option("--p0", type=click.Path(dir_okay=False), help="p(0) from .npy/.txt/.csv/.json.")
@click.option("--p0-seed", "p0_seed", type=int, default=DEFAULT_P0_SEED, show_default=True,
              help="Seed of target_distribution for --support/--S0.")
@click.option("--n", "n", type=int, required=True, help="Synthetic samples per generation.")
@click.option("--N", "N", type=int, help="Real corpus size (partially synthetic quantities).")
@click.option("--generations", "m", type=int,
              help="Generation m (default: the whole law of T; m → ∞ for partial).")
@click.option("--epsilon", type=float, help="ε for Lemma 1, Weissman, eq. 11.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def command(vocab, support, S0, p0, p0_seed, n, N, m, epsilon, fmt) -> None:
    """The paper's closed forms and bounds, the exact law of T and the predictions."""
    where = "theory"
    with input_errors():
        p = p0_from_flags(vocab, support, S0, p0, p0_seed, where)
        n = check_int(n, "n", low=1, where=where)
        if N is not None:
            N = check_int(N, "N", low=1, where=where)
        if m is not None:
            m = check_int(m, "generations", low=1 if N is None else 2, where=where)
        if epsilon is not None:
            epsilon = check_float(epsilon, "epsilon", low=0.0, low_open=True, where=where)
    report = theory_report(p, n, N, m, epsilon)
    if fmt == "json":
        echo_json(report)
    else:
        click.echo(format_report(report))
