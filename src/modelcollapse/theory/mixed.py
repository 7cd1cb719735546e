"""Mixed-generation scenarios (§4.2): most-recent-K and random-pool, and any eq.-5 scenario
whose samples are fresh draws. Every function says what kind of answer it gives (``KINDS``).
Public (re-exported by :mod:`modelcollapse.theory`): ``effective_population``,
``most_recent_collapse_prediction``, ``l1_to_first_upper_bound``; S_m and E‖p(m) − p(1)‖₂² of
these scenarios are ``theory.expected_sigma`` and ``theory.expected_l2sq_to_first``, built on
``second_moments`` here.

* **exact** — ``second_moments``: S_m = E‖p(m)‖₂², E‖p(m) − p(1)‖₂² and E‖p(m) − p(0)‖₂² for
  every m, for any scenario whose model m trains on n_t^(m) fresh draws from each earlier
  model p(t) (fully synthetic, most-recent, fresh-real, custom with fresh real data) and for
  the random pool. All second moments are linear in (p_i, p_i²), so they follow from a
  recursion on the cross moments M(t, u) = E[p(t)_i p(u)_i], kept per token as coefficients
  of p_i and p_i²: with X_t ~ Multinomial(n_t, p(t)) the draws from model t, n^(m) = Σ_t n_t,
      M(m, m) = [Σ_t (n_t p_i + n_t(n_t − 1) M(t,t)) + Σ_{t≠u} n_t n_u M(t,u)] / n^(m)²,
      M(v, m) = Σ_t (n_t/n^(m)) M(v, t)   (v < m),
  because fresh draws from p(t) are independent of every other model given p(t). For the
  random pool each sample comes from the mixture p̄(m) = (1/m) Σ_{t<m} p(t) (t = 0 is p(0)),
  so p(m) is the empirical distribution of n draws from p̄(m), and running sums make the
  recursion O(m) per generation. ``decay_rate`` (λ, the asymptotic factor of 1 − S_m per
  generation) and ``effective_population`` (1/(1 − λ)) follow from the same recursion.
* **approximation** — ``most_recent_collapse_prediction``: the expected absorption time of the
  most-recent-K loop (all K models in the window the same Dirac mass) from the corrected
  diffusion prediction of the fully synthetic loop with n replaced by n_e.
* **bound** — ``l1_to_first_upper_bound``: Σ_i √(E D_i²) ≥ E‖p(m) − p(1)‖₁ from the exact
  per-token second moments (Jensen).

Not predicted: the first Dirac time T of the most-recent loop for K > 1 (p(m) can be a Dirac
mass and regain diversity from older models, so T comes before absorption and depends on
more than second moments), and any collapse time of the random pool, which keeps drawing
from p(0) and does not collapse on the paper's time scales. ``verify`` measures both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validation import check_float, check_int, check_probabilities
from ..scenarios import Custom, FreshReal, FullySynthetic, MostRecent, RandomPool, Scenario
from .diffusion import collapse_time_prediction
from .paper import _generations

__all__ = [
    "KINDS",
    "SecondMoments",
    "decay_rate",
    "effective_population",
    "l1_to_first_upper_bound",
    "most_recent_collapse_prediction",
    "second_moments",
]

#: What each function of this module gives.
KINDS = {
    "second_moments": "exact",
    "decay_rate": "exact",
    "effective_population": "exact",
    "most_recent_collapse_prediction": "approximation",
    "l1_to_first_upper_bound": "bound",
}

_FRESH = (FullySynthetic, MostRecent, FreshReal)


@dataclass(frozen=True)
class SecondMoments:
    """Exact second moments, generation m = 0 … G (index m).

    ``sigma[m]`` = S_m = E‖p(m)‖₂²; ``l2sq_to_first[m]`` = E‖p(m) − p(1)‖₂² (NaN at m = 0);
    ``l2sq_to_true[m]`` = E‖p(m) − p(0)‖₂² (= S_m − S0: every p(m) is unbiased);
    ``token_l2sq_to_first`` (G+1, 2): rows (a, b) with E(p(m)_i − p(1)_i)² = a p_i + b p_i².
    """

    sigma: np.ndarray
    l2sq_to_first: np.ndarray
    l2sq_to_true: np.ndarray
    token_l2sq_to_first: np.ndarray
    kind: str = "exact"


def _pair(a: float, b: float) -> np.ndarray:
    """A per-token moment a p_i + b p_i², stored as its two coefficients."""
    return np.array([a, b], dtype=np.float64)


def _supported(scenario: Scenario) -> bool:
    if isinstance(scenario, (*_FRESH, RandomPool)):
        return True
    return isinstance(scenario, Custom) and scenario.real == "fresh"


def second_moments(S0: float, scenario: Scenario, n_generations: int) -> SecondMoments:
    """Exact S_m (eq. 6 generalised to §4.2), E‖p(m) − p(1)‖₂² and E‖p(m) − p(0)‖₂² for
    m = 0 … n_generations.

    Applies to fresh-draw scenarios (``FullySynthetic``, ``MostRecent``, ``FreshReal``,
    ``Custom`` with fresh real data) and to ``RandomPool``; the partially synthetic loop
    (a reused corpus) is in ``theory.partial``. Only S0 = Σ p_i² enters. The building block
    of ``theory.expected_sigma`` and ``theory.expected_l2sq_to_first`` for these scenarios.
    """
    where = "theory.second_moments"
    S0 = check_float(S0, "S0", low=0.0, high=1.0, where=where)
    G = check_int(n_generations, "n_generations", low=1, where=where)
    diag, first = _cross_moments(scenario, G, where)
    weights = np.array([1.0, S0])  # Σ_i p_i = 1, Σ_i p_i² = S0
    sigma = diag @ weights
    # E‖p(m) − p(1)‖² = Σ_i [M(m,m) − 2 M(1,m) + M(1,1)];  E‖p(m) − p‖² = S_m − S0 (unbiased).
    token = diag - 2 * first + diag[1]
    to_first = token @ weights
    to_first[0] = np.nan
    return SecondMoments(sigma, to_first, sigma - S0, token)


def _cross_moments(scenario: Scenario, G: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """M(m, m) and M(1, m) as (G+1, 2) coefficients of (p_i, p_i²), for a supported scenario;
    S_m = M(m, m) · (1, S0) and E‖p(m) − p(1)‖₂² = (M(m,m) − 2 M(1,m) + M(1,1)) · (1, S0)."""
    if not _supported(scenario):
        raise ValueError(f"The 'scenario' parameter of {where} must draw fresh samples "
                         f"(fully-synthetic, most-recent, fresh-real, random-pool, or custom with "
                         f"fresh real data). Got {scenario.name!r} instead.")
    if isinstance(scenario, RandomPool):
        return _random_pool(scenario.n, G)
    return _fresh(scenario, G)


def _fresh(scenario: Scenario, G: int) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal M(m, m) and M(1, m), (G+1, 2) each, for a fresh-draw scenario."""
    lag = scenario.lag
    cross: dict[tuple[int, int], np.ndarray] = {}  # M(t, u), t ≤ u, within the window
    p_sq = _pair(0.0, 1.0)

    def get(t: int, u: int) -> np.ndarray:
        t, u = min(t, u), max(t, u)
        return p_sq if t == 0 else cross[(t, u)]

    diag = np.zeros((G + 1, 2))
    first = np.zeros((G + 1, 2))
    diag[0] = p_sq
    first[0] = p_sq  # M(1, 0) = E[p(1)] p = p²
    for m in range(1, G + 1):
        counts = np.asarray(scenario.counts(m), dtype=np.float64)
        ts = np.flatnonzero(counts > 0)
        total = counts.sum()
        w = counts[ts] / total
        # M(m, m): the draws from t are multinomial given p(t); distinct t are independent.
        acc = np.zeros(2)
        for a, t in enumerate(ts):
            c = counts[t]
            acc += c * _pair(1.0, 0.0) + c * (c - 1) * get(t, t)
            for b, u in enumerate(ts):
                if b != a:
                    acc += c * counts[u] * get(t, u)
        diag[m] = acc / total**2
        # M(v, m) for the v that later models (or p(1)) will need.
        keep = range(1, m) if lag is None else range(max(1, m - lag + 1), m)
        for v in keep:
            cross[(v, m)] = sum(wt * get(v, t) if t != v else wt * get(v, v)
                                for wt, t in zip(w, ts))
        cross[(m, m)] = diag[m]
        if m >= 2:
            first[m] = sum(wt * (get(1, t) if t != 1 else get(1, 1)) for wt, t in zip(w, ts))
            cross[(1, m)] = first[m]
        else:
            first[1] = diag[1]
        if lag is not None:  # forget what no later model can reach (but keep M(1, ·))
            for key in [k for k in cross if k[1] <= m - lag and k[0] != 1]:
                del cross[key]
    return diag, first


def _random_pool(n: int, G: int) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal M(m, m) and M(1, m) for the random pool, O(G²) time, O(G) memory.

    p(m) | models = Multinomial(n, p̄(m))/n with p̄(m) = (1/m) Σ_{t<m} p(t); so
    M(m, m) = p/n + (1 − 1/n) E[p̄(m)²], M(v, m) = (1/m) Σ_{t<m} M(v, t).
    Running quantities: row[v] = Σ_{t<m} M(v, t) and total = Σ_{t,u<m} M(t, u).
    """
    diag = np.zeros((G + 1, 2))
    first = np.zeros((G + 1, 2))
    p_sq = _pair(0.0, 1.0)
    diag[0] = first[0] = p_sq
    rows = np.zeros((G + 1, 2))  # rows[v] = Σ_{t<m} M(v, t)
    rows[0] = p_sq  # m = 1: Σ_{t<1} M(0, t) = M(0, 0)
    total = p_sq.copy()
    for m in range(1, G + 1):
        mix_sq = total / m**2
        diag[m] = _pair(1.0 / n, 0.0) + (1 - 1 / n) * mix_sq
        new_cross = rows[:m] / m  # M(v, m) for v < m
        first[m] = diag[1] if m == 1 else new_cross[1]
        # Add generation m to the running sums for the next generation.
        total = total + 2 * new_cross.sum(axis=0) + diag[m]
        rows[:m] += new_cross
        rows[m] = new_cross.sum(axis=0) + diag[m]
    return diag, first


def decay_rate(scenario: Scenario, *, max_generations: int = 200_000,
               tolerance: float = 1e-13) -> float:
    """λ: the asymptotic factor by which 1 − S_m shrinks per generation (exact; §4.2, the rate
    1 − 1/n of eq. 6 for the fully synthetic loop).

    H(t, u) = 1 − Σ_i M(t, u)_i obeys the homogeneous part of the ``second_moments``
    recursion (the first-moment terms cancel because Σ_t n_t² − n + n = ... sums to n²):
    H(m, m) = [Σ_t n_t(n_t − 1) H(t,t) + Σ_{t≠u} n_t n_u H(t,u)]/n², H(v, m) = Σ_t w_t H(v, t).
    It is run with renormalisation (a power iteration) until the growth factor settles.
    Fully synthetic: λ = 1 − 1/n. Fresh-draw scenarios whose window keeps p(0) (the random
    pool, fresh-real) do not decay: they raise.
    """
    where = "theory.decay_rate"
    if isinstance(scenario, RandomPool) or not _supported(scenario) or scenario.uses_real:
        raise ValueError(f"The 'scenario' parameter of {where} must be a fresh-draw scenario "
                         f"without real data in every generation. Got {scenario.name!r}.")
    lag = scenario.lag if scenario.lag is not None else max_generations
    H: dict[tuple[int, int], float] = {}

    def get(t: int, u: int) -> float:
        t, u = min(t, u), max(t, u)
        return 1.0 if t == 0 else H[(t, u)]  # any positive H(0, ·): only the rate matters

    previous, log_scale, last = math.nan, 0.0, math.nan
    for m in range(1, max_generations + 1):
        counts = np.asarray(scenario.counts(m), dtype=np.float64)
        ts = np.flatnonzero(counts > 0)
        total = counts.sum()
        if m > lag:  # p(0) is out of reach: renormalise the window
            scale = max(H.values())
            H = {key: value / scale for key, value in H.items()}
            log_scale += math.log(scale)
        acc = 0.0
        for t in ts:
            for u in ts:
                acc += counts[t] * (counts[u] - (t == u)) * get(t, u)
        new = {(v, m): sum(counts[t] / total * get(v, t) for t in ts)
               for v in range(max(1, m - lag + 1), m)}
        H.update(new)
        H[(m, m)] = acc / total**2
        for key in [k for k in H if k[1] <= m - lag]:
            del H[key]
        level = math.log(H[(m, m)]) + log_scale  # ln H(m, m) without renormalisation
        if m > 2 * lag + 2:
            rate = math.exp(level - last)
            if abs(rate - previous) < tolerance:
                return rate
            previous = rate
        last = level
    return previous


def effective_population(*, scenario: Scenario) -> float:
    """n_e = 1/(1 − λ) of a mixed-generation scenario (§4.2): the population of a fully
    synthetic loop whose 1 − S_m (eq. 6: (1 − 1/n)^m (1 − S0)) decays at the same rate λ
    (``decay_rate``, exact); n for the fully synthetic loop itself. Does not depend on p(0).
    Fresh-draw scenarios without real data in every generation (fully-synthetic,
    most-recent, custom); the others do not decay and raise."""
    return 1.0 / (1.0 - decay_rate(scenario))


def most_recent_collapse_prediction(p0: object, *, n: int, K: int) -> float:
    """Approximation: expected absorption time of the most-recent-K loop of §4.2 (even split),
    the first generation from which the last K models are one Dirac mass (nothing changes
    after). ``p0`` is (vocab,).

    ``collapse_time_prediction(p0, n=round(n_e))`` with n_e = ``effective_population`` (about
    n(K+1)²/4: the window mean Σ_j (K − j) p(m−j) is a martingale whose per-generation
    variance is 4/(K+1)² that of p(m)), plus the K − 1 generations the window needs to fill
    with the winning Dirac mass. K = 1 is the fully synthetic prediction. Against simulation
    it is within −4 % … +9 % for n = 10 … 60, K = 2 … 10 (benchmarks/theory_accuracy.py);
    the error is largest when each model contributes only n/K ≈ 1-2 samples.
    """
    p = check_probabilities(p0, "p0", where="theory.most_recent_collapse_prediction")
    scenario = MostRecent(n=n, K=K)
    if K == 1:
        return float(collapse_time_prediction(p, n=n))
    n_e = effective_population(scenario=scenario)
    return float(collapse_time_prediction(p, n=max(1, round(n_e)))) + (K - 1)


def l1_to_first_upper_bound(p0: object, *, scenario: Scenario,
                            m: int | np.ndarray) -> np.ndarray:
    """Rigorous upper bound on E‖p(m) − p(1)‖₁ (metric ``l1_to_first``, the quantity of
    Theorems 3-4) in a fresh-draw scenario or the random pool (§4.2): min(2, Σ_i √(E D_i²))
    with the exact per-token second moments E D_i² of ``second_moments`` (Jensen:
    E|X| ≤ √(E X²)). For the partially synthetic loop the same bound is
    ``expected_l1_to_first(...).jensen_upper``.

    ``p0`` is (vocab,); ``m`` an int ≥ 0 or an int array, the result has its shape; NaN at
    m = 0, as for the metric (p(1) does not exist yet). On the paper's settings it is 1.3-2.3×
    the simulated value; treating D_i as normal does not give a usable prediction (most
    tokens are absent from both models).
    """
    where = "theory.l1_to_first_upper_bound"
    p = check_probabilities(p0, "p0", where=where)
    if p.ndim != 1:
        raise ValueError(f"The 'p0' parameter of {where} must be one "
                         f"distribution (vocab,). Got shape {p.shape} instead.")
    gens = _generations(m, "l1_to_first_upper_bound")
    mom = second_moments(float(np.sum(p * p)), scenario, max(int(gens.max()), 1))
    coef = mom.token_l2sq_to_first
    per_token = np.clip(coef[:, :1] * p[None, :] + coef[:, 1:] * p[None, :] ** 2, 0.0, None)
    upper = np.minimum(np.sqrt(per_token).sum(axis=1), 2.0)
    upper[0] = np.nan
    return upper[gens]
