"""Collapse time of the fully synthetic loop from the Wright–Fisher diffusion, with a finite-n
correction.

The fully synthetic loop is the neutral multi-allele Wright–Fisher chain with population n
(each sample of model m copies a uniformly chosen training sample of model m−1). T, the first
m ≥ 1 with p(m) a Dirac mass (Theorem 1), is its fixation time started at p(0).

``collapse_time_prediction(p0, n=n, method=...)`` (public, re-exported by
:mod:`modelcollapse.theory`) gives E[T] three ways:

* ``method="littler"``: the diffusion limit (Kimura; Littler 1975),
  E[T] ≈ −2n Σ_i (1 − p_i) ln(1 − p_i). It overestimates E[T] by about
  (1/3) ln n + 0.2…0.7 generations (+2-3.4 % at n = 50 on the paper's Fig. 2 distributions).
* ``method="corrected"`` (default): the corrected prediction (same order of cost). Trace the n
  samples of a generation back to generation 1: their distinct ancestors B_t (t generations
  back, B_0 = n) form the lineage-counting chain, and with g(k) = Σ_i p_i^k (the chance that
  k i.i.d. draws of p(0) agree) and h(k) = 1 − g(k),

      E[T] = 1 + Σ_{k=2}^{n} h(k) τ_k,   τ_k = E[number of generations the chain spends at k].

  Kingman's coalescent gives τ_k = 2n/(k(k−1)), which summed reproduces Littler's formula as
  n → ∞. For the discrete chain, the geometric holding time adds 1/2 − (2k−1)/(3k(k−1)) and
  double mergers skip state k with probability ≈ [(k−1)/3 + (k−1)(k−2)/4]/n, removing
  1/2 − 1/(3k); hence τ_k = 2n/(k(k−1)) − 1/(3(k−1)) + O(1/n). That expansion fails in the
  first generations, where B_t ∝ n; the exact chain shows the whole shortfall is a constant
  carried by the top state, τ_n += κ − κ₁/n with κ = 0.4707, κ₁ = 0.322: they are the first
  terms of E[T_MRCA(n)] − 2(n−1) + H_{n−1}/3 for the exact chain (T_MRCA = generations until
  B_t = 1), fitted on n = 50 … 2400 to 10⁻⁶ and checked against the exact chain in the tests.
  Against the exact law the relative error is below 0.01 % for the Fig. 2 distributions at
  n ≥ 50 and below 1 % on every case tried, down to n = 2 (docs/theory.md).
* ``method="kingman"``: Kingman's τ_k with n lineages (the diffusion limit truncated at n,
  plus one).

Building blocks, importable from here (not re-exported by :mod:`modelcollapse.theory`):

* ``collapse_time_sd_prediction``: sd(T) under the corrected approximation;
  ``lineage_times`` (τ_k) and ``power_sums`` (g(k)).
* ``diffusion_collapse_law``: the distribution of T under the same approximation: the lineage
  count as a continuous-time pure-death chain with mean holding times τ_k, and a random level
  K* (P(K* ≥ k) = g(k)) at which the surviving ancestors first carry one token; T − 1 is the
  time the chain takes to fall to K*. Mean and sd in closed form; ρ_m = P(T ≤ m) by matrix
  exponential for n ≤ 1000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm

from .._validation import check_choice, check_int, check_probabilities

__all__ = [
    "KAPPA",
    "KAPPA_1",
    "PREDICTION_METHODS",
    "DiffusionLaw",
    "collapse_time_prediction",
    "collapse_time_sd_prediction",
    "diffusion_collapse_law",
    "lineage_times",
    "power_sums",
]

#: lim_{n→∞} E[T_MRCA(n)] − 2(n−1) + H_{n−1}/3 for the discrete lineage chain (see module doc).
KAPPA = 0.4707
#: The 1/n term of that expansion: E[T_MRCA(n)] − 2(n−1) + H_{n−1}/3 ≈ KAPPA − KAPPA_1/n.
KAPPA_1 = 0.322
#: Largest n for which ``diffusion_collapse_law`` builds the distribution (an n×n expm).
LAW_MAX_N = 1000
#: Terms p^k below this are dropped from the power sums g(k) (absolute error per token).
POWER_FLOOR = 1e-20


def _rows(p0: np.ndarray, where: str) -> tuple[np.ndarray, bool]:
    p = check_probabilities(p0, "p0", where=where)
    return (p[None, :], True) if p.ndim == 1 else (p, False)


def _littler_collapse_time(rows: np.ndarray, n: int, single: bool) -> float | np.ndarray:
    """Diffusion approximation E[T] ≈ −2n Σ_i (1 − p_i) ln(1 − p_i) (Littler 1975).

    A Dirac p(0) gives 0 (the diffusion has no discrete first generation).
    """
    q = np.clip(1.0 - rows, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * np.log(q), 0.0)
    out = -2.0 * n * terms.sum(axis=1) + 0.0  # + 0.0: a Dirac p(0) gives 0, not −0
    return float(out[0]) if single else out


def power_sums(p: np.ndarray, n: int) -> np.ndarray:
    """g(k) = Σ_i p_i^k for k = 0 … n (g(0) = support size, g(1) = 1); shape (n+1,).

    Terms below 1e-20 are dropped, so the cost is Σ_i min(n, 46/ln(1/p_i)), not s̃·n.
    """
    q = np.sort(p[p > 0])[::-1]
    g = np.zeros(n + 1)
    g[0] = q.size
    if n == 0:
        return g
    logq = np.log(q)
    with np.errstate(divide="ignore"):
        reach = np.where(logq < 0, np.ceil(math.log(POWER_FLOOR) / logq), n)
    reach = np.minimum(reach, n).astype(np.int64)
    start = 0
    while start < q.size:
        # Sorted descending, so reach is non-increasing: cut chunks of ≤ 2^22 numbers.
        span = max(int(reach[start]), 1)
        stop = min(q.size, start + max(1, (1 << 22) // span))
        k = np.arange(1, span + 1)
        g[1 : span + 1] += np.exp(np.outer(logq[start:stop], k)).sum(axis=0)
        start = stop
    g[1] = 1.0  # Σ p_i, exactly
    return g


def lineage_times(n: int, *, corrected: bool = True) -> np.ndarray:
    """τ_k for k = 0 … n (zero for k < 2): expected generations the lineage chain spends at k.

    ``corrected=False`` gives Kingman's 2n/(k(k−1)); the default adds the discrete-chain
    terms −1/(3(k−1)) and, at k = n, κ − κ₁/n (module doc). Shape (n+1,).
    """
    n = check_int(n, "n", low=1, where="theory.lineage_times")
    tau = np.zeros(n + 1)
    if n < 2:
        return tau
    k = np.arange(2, n + 1, dtype=np.float64)
    tau[2:] = 2.0 * n / (k * (k - 1))
    if corrected:
        tau[2:] -= 1.0 / (3.0 * (k - 1))
        tau[n] += KAPPA - KAPPA_1 / n
    return tau


def _moments(p: np.ndarray, n: int, corrected: bool) -> tuple[float, float]:
    """(E[T], Var[T]) from the lineage-chain representation, for one context."""
    if n == 1 or p.max() >= 1.0:
        return 1.0, 0.0  # p(1) is one sample (or p(0) is a Dirac mass): T = 1
    g = power_sums(p, n)
    tau = lineage_times(n, corrected=corrected)
    h = 1.0 - g
    h[:2] = 0.0
    mean = 1.0 + float(np.sum(h * tau))
    # K* = level at which the surviving ancestors first carry one token:
    # P(K* = j) = g(j) − g(j+1) (j < n), P(K* = n) = g(n); T − 1 = Σ_{k>K*} X_k with X_k
    # independent exponentials of mean τ_k.
    pk = np.zeros(n + 1)
    pk[1:n] = g[1:n] - g[2 : n + 1]
    pk[n] = g[n]
    above = np.concatenate([np.cumsum(tau[::-1])[::-1][1:], [0.0]])  # Σ_{k>j} τ_k
    second = float(np.sum(h * tau**2)) + float(np.sum(pk * above**2))
    var = max(second - (mean - 1.0) ** 2, 0.0)
    return mean, var


#: The ways ``collapse_time_prediction`` predicts E[T] (module doc).
PREDICTION_METHODS = ("corrected", "kingman", "littler")


def collapse_time_prediction(p0: object, *, n: int,
                             method: str = "corrected") -> float | np.ndarray:
    """Predicted E[T] of the fully synthetic loop (the quantity Theorem 1 bounds in eq. 8)
    from the Wright–Fisher diffusion.

    ``method``: "corrected" (default), E[T] = 1 + Σ_{k=2}^{n} (1 − Σ_i p_i^k) τ_k with the
    discrete-chain τ_k (module doc); "kingman", the same with Kingman's τ_k = 2n/(k(k−1))
    (the diffusion limit truncated at n lineages, plus one); "littler", the diffusion limit
    −2n Σ_i (1 − p_i) ln(1 − p_i) (Littler 1975; 0 for a Dirac p(0)).
    ``p0`` is (vocab,) or (contexts, vocab); returns a float or an array (contexts,).
    """
    where = "theory.collapse_time_prediction"
    rows, single = _rows(p0, where)
    n = check_int(n, "n", low=1, where=where)
    method = check_choice(method, "method", PREDICTION_METHODS, where=where)
    if method == "littler":
        return _littler_collapse_time(rows, n, single)
    corrected = method == "corrected"
    out = np.array([_moments(row, n, corrected)[0] for row in rows])
    return float(out[0]) if single else out


def collapse_time_sd_prediction(p0: object, *, n: int) -> float | np.ndarray:
    """Predicted sd(T) of the fully synthetic loop under the corrected approximation of
    ``collapse_time_prediction`` (exponential holding times). ``p0`` is (vocab,) or
    (contexts, vocab); returns a float or an array (contexts,)."""
    where = "theory.collapse_time_sd_prediction"
    rows, single = _rows(p0, where)
    n = check_int(n, "n", low=1, where=where)
    out = np.sqrt([_moments(row, n, True)[1] for row in rows])
    return float(out[0]) if single else out


@dataclass(frozen=True)
class DiffusionLaw:
    """Approximate law of T (one context). ``survival[m]`` = P(T > m), m = 0 … M."""

    mean: float
    sd: float
    survival: np.ndarray

    @property
    def collapse_prob(self) -> np.ndarray:
        """ρ_m = P(T ≤ m) = 1 − survival, m = 0 … M."""
        return 1.0 - self.survival

    def quantile(self, q: float) -> int:
        """Smallest m with P(T ≤ m) ≥ q (within the computed horizon)."""
        hit = np.flatnonzero(self.collapse_prob >= q)
        if hit.size == 0:
            raise ValueError(f"The 'q' parameter of DiffusionLaw.quantile is beyond the horizon "
                             f"m = {self.survival.size - 1}. Got {q!r} instead.")
        return int(hit[0])


def diffusion_collapse_law(p0: object, *, n: int, max_generation: int | None = None,
                           tail: float = 1e-10) -> DiffusionLaw:
    """ρ_m and the survival function of T from the corrected lineage approximation.

    P(T > m) = E[h(A(m − 1/2))] for m ≥ 1, with A the pure-death chain of mean holding times
    τ_k started at n (evaluated mid-generation, so that Σ_m P(T > m) is the predicted E[T]).
    The horizon is ``max_generation`` or the first m with P(T > m) < tail.
    One context (p0 of shape (vocab,)); n ≤ 1000.
    """
    where = "theory.diffusion_collapse_law"
    p = check_probabilities(p0, "p0", where=where)
    if p.ndim != 1:
        raise ValueError(f"The 'p0' parameter of {where} must be one distribution (vocab,). "
                         f"Got shape {p.shape} instead.")
    n = check_int(n, "n", low=1, high=LAW_MAX_N, where=where)
    mean, var = _moments(p, n, True)
    if n == 1 or p.max() >= 1.0:
        return DiffusionLaw(1.0, 0.0, np.array([1.0, 0.0]))
    horizon = (check_int(max_generation, "max_generation", low=1, where=where)
               if max_generation is not None else None)
    tau = lineage_times(n)
    h = 1.0 - power_sums(p, n)
    rate = 1.0 / tau[2:]  # states k = 2 … n, index k − 2
    # Generator of the pure-death chain on {2, …, n} (mass leaving 2 is absorbed at 1).
    gen = np.diag(-rate) + np.diag(rate[1:], 1)
    half = expm(0.5 * gen)  # half a generation; upper triangular
    step = half @ half
    state = np.zeros(n - 1)
    state[-1] = 1.0
    state = half @ state  # midpoint rule: P(T > m) ≈ E[h(A(m − 1/2))], so Σ_m matches E[T]
    top = n - 1  # states above index top hold negligible mass: mass only moves down
    survival = [1.0]
    limit = horizon if horizon is not None else 10**7
    while len(survival) <= limit:
        survival.append(float(state[:top] @ h[2 : top + 2]))
        if horizon is None and survival[-1] < tail:
            break
        state[:top] = step[:top, :top] @ state[:top]
        while top > 1 and state[top - 1] < 1e-18:
            top -= 1
    return DiffusionLaw(mean, math.sqrt(var), np.array(survival))
