"""Every applicable formula, bound and prediction for one setting: what ``modelcollapse theory``
prints (``theory_report`` gives the numbers, ``format_theory_report`` the table).

Fully synthetic (Theorem 1, Proposition 1, the exact law of T, the diffusion predictions);
with N, partially synthetic (Theorems 2-4, eqs. 9-11); π_p of eq. 12; with ε, Lemma 1,
Weissman's bound and eq. 11.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import InputError, check_float, check_int, check_probabilities
from ..scenarios import FullySynthetic, PartiallySynthetic
from .diffusion import collapse_time_prediction, collapse_time_sd_prediction
from .genealogy import collapse_time_law
from .moments import expected_l2sq_to_first, expected_sigma
from .paper import (
    G_regime,
    collapse_prob_bounds,
    collapse_time_bounds,
    eq11_max_n,
    expected_lambda_empirical,
    largest_safe_n_theorem3,
    log_G,
    log_lemma1_bound,
    log_theorem3_bound,
    log_theorem4_bound,
    log_weissman_bound,
    phi,
    pi_p,
    zeta,
)
from .partial import expected_l1_to_first

__all__ = ["format_theory_report", "theory_report"]

#: Monte Carlo corpora behind E[λ1] of Theorem 4, and their seed.
LAMBDA_DRAWS = 200
LAMBDA_SEED = 0


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _listed(values: np.ndarray) -> list[float | None]:
    return [_finite(float(v)) for v in values]


#: Largest n the report tabulates the exact law of T for: it takes O(n²) time (2 cores:
#: n = 10⁴ in ~10 s, n = 10⁵ in ~10 minutes).
EXACT_LAW_MAX_N = 20_000


def check_exact_law_size(n: int, where: str) -> int:
    """``n``, or one refusal naming the cost and the way out when the exact law is too slow."""
    if n > EXACT_LAW_MAX_N:
        raise InputError(
            f"The 'n' parameter of {where} must be at most {EXACT_LAW_MAX_N:,}: the report "
            f"tabulates the exact law of T, which takes O(n²) time (n = 10⁴: ~10 s, 10⁵: ~10 "
            f"minutes). Got {n:,} instead; for larger n, modelcollapse.theory's "
            f"collapse_time_prediction and expected_sigma answer in closed form.")
    return n


#: Most generations the report tabulates: it lists a dozen numbers per generation (m = 10⁶:
#: ~17 s and ~1 GB on 2 cores), and the law of T has long reached 0 or 1 by then.
REPORT_MAX_GENERATIONS = 1_000_000


def check_report_generations(m: int | None, where: str) -> int | None:
    """``m``, or one refusal when the report's per-generation tables would be too long."""
    if m is not None and m > REPORT_MAX_GENERATIONS:
        raise InputError(
            f"The 'generations' parameter of {where} must be at most "
            f"{REPORT_MAX_GENERATIONS:,}: the report tabulates a dozen numbers per generation. "
            f"Got {m:,} instead; for the limit m → ∞ of the partially synthetic quantities, "
            f"leave it out.")
    return m


def theory_report(p0: object, *, n: int, N: int | None = None, m: int | None = None,
                  epsilon: float | None = None) -> dict:
    """Every applicable quantity for one p(0) (vocab,), as a JSON-ready dict (non-finite
    numbers become None): the fully synthetic loop with n samples per generation (Theorem 1:
    S_m of eq. 6, the bounds of eqs. 7-8; the exact law of T; the diffusion predictions of
    E[T]); with N, the partially synthetic loop (Theorem 2, eq. 9; the exact
    E‖p(m) − p(1)‖₂² and the predicted E‖p(m) − p(1)‖₁; G_n(s) of eq. 10; the bounds of
    Theorems 3 and 4); π_p of eq. 12; with ε, the bounds of Lemma 1 and Weissman and eq. 11.

    ``m``: the generation (≥ 1; ≥ 2 with N) at which the partially synthetic quantities are
    given and up to which the law of T is tabulated (default: the whole law; m → ∞ for the
    partially synthetic ones). The vocabulary size s of eqs. 10-13 is ``p0.size``.
    """
    where = "theory.theory_report"
    p = np.asarray(p0, dtype=np.float64)  # as given: each function below validates it
    if check_probabilities(p, "p0", where=where).ndim != 1:
        raise ValueError(f"The 'p0' parameter of {where} must be one distribution (vocab,). "
                         f"Got shape {p.shape} instead.")
    n = check_exact_law_size(check_int(n, "n", low=1, where=where), where)
    if N is not None:
        N = check_int(N, "N", low=1, where=where)
    if m is not None:
        m = check_report_generations(check_int(m, "m", low=1 if N is None else 2,
                                               where=where), where)
    if epsilon is not None:
        epsilon = check_float(epsilon, "epsilon", low=0.0, low_open=True, where=where)
    S0 = float(np.sum(p * p))
    support = int(np.count_nonzero(p))
    out: dict = {"vocab": int(p.size), "support": support, "S0": S0, "n": n, "N": N,
                 "generations": m}
    nontrivial = support >= 2
    # --- fully synthetic (Theorem 1, Proposition 1, diffusion, exact law) ---
    law = collapse_time_law(p, n=n, max_generations=m)
    if nontrivial:
        lower, upper = collapse_time_bounds(p, n=n)
        out["collapse_time_lower_eq8"] = lower
        out["collapse_time_upper_eq8"] = upper
    out["collapse_time_exact_mean"] = float(law.mean)
    out["collapse_time_exact_sd"] = float(law.sd)
    out["collapse_time_littler"] = float(collapse_time_prediction(p, n=n, method="littler"))
    out["collapse_time_prediction"] = float(collapse_time_prediction(p, n=n))
    out["collapse_time_sd_prediction"] = float(collapse_time_sd_prediction(p, n=n))
    gens = np.arange(law.survival.size)
    out["collapse_prob"] = _listed(law.collapse_prob)
    out["expected_support"] = _listed(law.expected_support)
    out["sigma_eq6"] = _listed(expected_sigma(p, scenario=FullySynthetic(n=n), m=gens))
    if nontrivial and gens.size > 1:
        lo, hi = collapse_prob_bounds(p, n=n, m=gens[1:])
        out["collapse_prob_lower_eq7"] = [None, *_listed(lo)]
        out["collapse_prob_upper_eq7"] = [None, *_listed(hi)]
    # --- partially synthetic (Theorem 2-4, eq. 10-11) ---
    if N is not None:
        partial = PartiallySynthetic(n=n, N=N)
        l2sq = float(expected_l2sq_to_first(p, scenario=partial, m=m))
        # S_m = S_1 + E‖p(m) − p(1)‖₂², which also gives the limit m → ∞.
        out["sigma_eq9"] = float(expected_sigma(p, scenario=partial, m=1)) + l2sq
        out["l2sq_deviation_exact"] = l2sq
        dev = expected_l1_to_first(p, n=n, N=N, m=m)
        out["l1_deviation_prediction"] = dev.value
        out["l1_deviation_method"] = dev.method
        out["l1_deviation_jensen_upper"] = dev.jensen_upper
        out["G_regime_eq10"] = G_regime(n, p.size)
        out["log_G_eq10"] = _finite(log_G(n, p.size))
        out["log_theorem3_bound"] = _finite(log_theorem3_bound(p, n=n, N=N))
        lam, lam_se = expected_lambda_empirical(p, N, n_draws=LAMBDA_DRAWS, seed=LAMBDA_SEED)
        out["expected_lambda1"] = lam
        out["expected_lambda1_se"] = lam_se
        out["zeta"] = zeta(lam, n, N)
        out["log_theorem4_bound"] = _finite(log_theorem4_bound(p, n=n, N=N,
                                                               expected_lambda1=lam))
    part = pi_p(p)
    out["pi_p_eq12"] = part.value
    out["pi_p_bracket"] = [part.lower, part.upper]
    out["pi_p_exact"] = part.exact
    out["phi_of_pi_p"] = _finite(float(phi(part.upper)))
    if epsilon is not None:
        out["epsilon"] = epsilon
        out["log_lemma1_bound"] = _finite(log_lemma1_bound(p, n=n, epsilon=epsilon))
        out["log_weissman_bound"] = _finite(log_weissman_bound(p, n=n, epsilon=epsilon))
        if N is not None:
            out["eq11_max_n"] = eq11_max_n(max(p.size, 2), N, epsilon)
            out["largest_safe_n_theorem3"] = largest_safe_n_theorem3(max(p.size, 2), N, epsilon)
    return out


#: The rows of the printed report, in sections: (title, ((key, label), …)).
_SECTIONS = (
    ("p(0)", (("S0", "S0 = Σ p_i² of p(0)"),
              ("pi_p_eq12", "π_p of p(0) (eq. 12)"),
              ("pi_p_exact", "  exact"),
              ("phi_of_pi_p", "φ(π_p)"))),
    ("fully synthetic loop: n samples of model m − 1 per generation (Theorem 1)", (
        ("collapse_time_lower_eq8", "E[T] lower bound (eq. 8)"),
        ("collapse_time_upper_eq8", "E[T] upper bound (eq. 8)"),
        ("collapse_time_exact_mean", "E[T] exact (lineage chain)"),
        ("collapse_time_exact_sd", "sd(T) exact"),
        ("collapse_time_littler", "E[T] diffusion (Littler)"),
        ("collapse_time_prediction", "E[T] corrected diffusion"),
        ("collapse_time_sd_prediction", "sd(T) corrected diffusion"))),
    ("partially synthetic loop: N real + n synthetic samples per generation "
     "(Theorems 2-4)", (
        ("sigma_eq9", "S_m (eq. 9)"),
        ("l2sq_deviation_exact", "E‖p(m)−p(1)‖₂² exact"),
        ("l1_deviation_prediction", "E‖p(m)−p(1)‖₁ prediction"),
        ("l1_deviation_method", "  method"),
        ("l1_deviation_jensen_upper", "E‖p(m)−p(1)‖₁ upper bound (Jensen)"),
        ("G_regime_eq10", "case of eq. 10"),
        ("log_G_eq10", "ln G_n(s) (eq. 10)"),
        ("log_theorem3_bound", "ln Theorem 3 bound"),
        ("expected_lambda1", "E[λ1] (Monte Carlo, exact λ per draw)"),
        ("zeta", "ζ (Theorem 4)"),
        ("log_theorem4_bound", "ln Theorem 4 bound"))),
    ("with ε", (
        ("log_lemma1_bound", "ln Lemma 1 bound on P(‖p̂−p‖₁ ≥ ε)"),
        ("log_weissman_bound", "ln Weissman bound on P(‖p̂−p‖₁ ≥ ε)"),
        ("eq11_max_n", "eq. 11 right-hand side"),
        ("largest_safe_n_theorem3", "largest n from Theorem 3"))),
)


def format_theory_report(report: dict) -> str:
    """The table ``modelcollapse theory`` prints for a ``theory_report`` dict: one section
    per loop, so that no quantity sits under another loop's heading."""
    head = (f"p(0): vocab {report['vocab']}, support {report['support']}; n = {report['n']}"
            + (f", N = {report['N']}" if report["N"] is not None else "")
            + (f", m = {report['generations']}" if report["generations"] is not None
               else ", partially synthetic quantities at m → ∞" if report["N"] is not None
               else ""))
    lines = [head]
    for title, rows in _SECTIONS:
        body = [f"  {label:<40} {_text(report[key])}" for key, label in rows
                if report.get(key) is not None]
        if title.startswith("fully"):
            body += _collapse_quantiles(report["collapse_prob"])
        if body:
            lines += [title, *body]
    return "\n".join(lines)


def _text(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _collapse_quantiles(rho: list) -> list[str]:
    out = []
    for q in (0.5, 0.9, 0.99):
        hit = next((i for i, r in enumerate(rho) if r is not None and r >= q), None)
        if hit is not None:
            out.append(f"  {'first m with ρ_m ≥ ' + str(q) + ' (exact)':<40} {hit}")
    return out
