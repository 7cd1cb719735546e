"""The paper's closed forms and bounds (§3, appendices A and B), one function each.

Public (re-exported by :mod:`modelcollapse.theory`, p(0) first, sizes as keywords):
``collapse_prob_bounds`` (Theorem 1, eq. 7), ``collapse_time_bounds`` (eq. 8),
``absorption_probabilities`` (Proposition 1), ``log_theorem3_bound`` (Theorem 3),
``log_theorem4_bound`` (Theorem 4), ``log_lemma1_bound`` (Lemma 1), ``pi_p`` (eq. 12).

Building blocks, in the paper's own variables (S0, s̃, n, N, s), importable from here:
``expected_sigma_fully`` (eq. 6) and ``expected_sigma_partial`` (eq. 9, with the sign of its
last transient term corrected; ``as_printed=True`` gives the printed form), which
``theory.expected_sigma`` evaluates for a p(0); ``G_regime`` and ``log_G`` (eq. 10 = eq. 13),
``eq11_max_n`` and the largest safe n of eq. 11 and Theorem 3, ``phi`` (appendix A), ``zeta``
and ``expected_lambda_empirical`` (Theorem 4), ``balanced_partition_counts`` and ``lambda_p``
(eq. 12), ``log_weissman_bound``.

Deviation bounds (Theorem 3, Theorem 4, Lemma 1, eqs. 10-13) are returned as natural
logarithms: G_n(s) is 2^s − 2 or e^{C0 n/(2e)} s C1, beyond the float range from s ≈ 1000 on
(and already 10^180 at s = 600); the logs stay finite for any s ≥ 2, n ≥ 1.

π_p (eq. 12) and λ = max_A p(A) p(Aᶜ) are a balanced-partition (subset-sum) problem:
``balanced_partition_counts`` solves it exactly for integer counts (hence for any empirical
distribution, e.g. p(1)); ``pi_p`` is exact for real-valued p when the largest mass is ≥ 1/2,
when the support is small (meet in the middle) or when a denominator is given, and otherwise
returns a certified bracket [lower, upper] from a subset-sum on p rounded down and up to a
grid of 2^-22 (width ≤ support / 2^22), or from the greedy partition when the support is too
large for that.

p(0) arrays are (vocab,) (or (contexts, vocab) where stated); the vocabulary size s of eqs.
10-13 is their last dimension. All sizes (n, N, s) are ints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validation import check_float, check_int, check_probabilities
from ..rng import SeedLike, generator

__all__ = [
    "C0",
    "C1",
    "G_regime",
    "PartitionValue",
    "absorption_probabilities",
    "balanced_partition_counts",
    "collapse_prob_bounds",
    "collapse_time_bounds",
    "eq11_max_n",
    "expected_lambda_empirical",
    "expected_sigma_fully",
    "expected_sigma_partial",
    "lambda_p",
    "largest_safe_n_eq11",
    "largest_safe_n_theorem3",
    "log_G",
    "log_lemma1_bound",
    "log_theorem3_bound",
    "log_theorem4_bound",
    "log_weissman_bound",
    "phi",
    "pi_p",
    "zeta",
]

#: Constants of Lemma 1 / Theorem 3: C0 = e³/(2π) ≈ 3.197, C1 = 6e/π^(3/2) ≈ 2.929.
C0 = math.e**3 / (2 * math.pi)
C1 = 6 * math.e / math.pi**1.5

#: Grid (2^-22) on which real-valued p is rounded for the subset-sum bracket of π_p.
PARTITION_SCALE = 2**22
#: Supports up to this size get π_p exactly by meet in the middle (2 × 2^16 subset sums).
EXACT_PARTITION_SUPPORT = 32
#: Above this support the subset-sum on the grid is skipped: the greedy bracket is used.
GRID_PARTITION_SUPPORT = 20_000


def _where(name: str) -> str:
    return f"theory.{name}"


def _generations(m: object, name: str, low: int = 0) -> np.ndarray:
    """Validate a generation index or an array of them (ints ≥ low); returns an int64 array."""
    arr = np.asarray(m)
    if arr.ndim == 0:
        check_int(arr.item() if arr.dtype.kind in "iu" else m, "m", low=low, where=_where(name))
    elif arr.dtype.kind not in "iu" or arr.size == 0:
        raise TypeError(f"The 'm' parameter of {_where(name)} must be an int or a non-empty "
                        f"array of ints. Got {m!r} instead.")
    elif np.any(arr < low):
        raise ValueError(f"The 'm' parameter of {_where(name)} must be in the range "
                         f"[{low}, inf). Got {int(arr.min())} instead.")
    return arr.astype(np.int64)


def _rows(p0: object, where: str) -> tuple[np.ndarray, bool]:
    """p(0) as rows (contexts, vocab), and whether it was one distribution (vocab,).

    Validated, but as given (not renormalised): S0 and s̃ are those of the caller's array."""
    p = check_probabilities(p0, "p0", where=where)
    raw = np.asarray(p0, dtype=np.float64)
    return (raw[None, :], True) if p.ndim == 1 else (raw, False)


def _one(p0: object, where: str) -> np.ndarray:
    """p(0) as one distribution (vocab,)."""
    p = check_probabilities(p0, "p0", where=where)
    if p.ndim != 1:
        raise ValueError(f"The 'p0' parameter of {where} must be one distribution (vocab,). "
                         f"Got shape {p.shape} instead.")
    return p


def _nontrivial(row: np.ndarray, where: str) -> tuple[float, int]:
    """S0 = Σ p_i² and s̃ of one p(0) row, which must have at least two tokens (Theorem 1)."""
    support = int(np.count_nonzero(row))
    if support < 2:
        raise ValueError(f"The 'p0' parameter of {where} must have at least two tokens with "
                         f"positive probability (a nontrivial p(0), as Theorem 1 assumes). "
                         f"Got support {support} instead.")
    return _s0_support(float(np.sum(row**2)), support, where)


def _s0_support(S0: float, support: int, where: str) -> tuple[float, int]:
    """The paper assumes a nontrivial p(0): support ≥ 2 and 1/support ≤ S0 < 1."""
    support = check_int(support, "support", low=2, where=where)
    S0 = check_float(S0, "S0", low=0.0, high=1.0, where=where)
    # Σp² ≥ 1/s̃ on s̃ tokens; the slack absorbs rounding of an S0 computed from p.
    if S0 >= 1.0 or S0 < 1.0 / support - 1e-9:
        raise ValueError(f"The 'S0' parameter of {where} must be in the range "
                         f"[1/support, 1) = [{1.0 / support:.6g}, 1) (a nontrivial p(0), as "
                         f"Theorem 1 assumes). Got {S0!r} instead.")
    return S0, support


# --------------------------------------------------------------------------------------------
# Theorem 1 and Proposition 1: fully synthetic loop
# --------------------------------------------------------------------------------------------

def expected_sigma_fully(S0: float, n: int, m: int | np.ndarray) -> np.ndarray:
    """Theorem 1, eq. 6: S_m = E‖p(m)‖₂² = 1 − (1 − 1/n)^m (1 − S0), exact for every m ≥ 0.

    The formula in the paper's variables; ``theory.expected_sigma`` evaluates it for a p(0).
    ``m`` is an int or an int array; the result has its shape.
    """
    S0 = check_float(S0, "S0", low=0.0, high=1.0, where=_where("expected_sigma_fully"))
    n = check_int(n, "n", low=1, where=_where("expected_sigma_fully"))
    m = _generations(m, "expected_sigma_fully")
    # (1 − 1/n)^m through log1p, so that large m and n lose no digits.
    decay = np.exp(m * math.log1p(-1.0 / n)) if n > 1 else (m == 0).astype(float)
    return 1.0 - decay * (1.0 - S0)


def collapse_prob_bounds(p0: object, *, n: int,
                         m: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Theorem 1, eq. 7: bounds on ρ_m = P(p(m) is a Dirac mass) in the fully synthetic loop.

    lower = 1 − n (1 − S0)(1 − 1/n)^m,  upper = 1 − (1 − S0)/(1 − 1/s̃) (1 − 1/n)^m,
    both clipped to [0, 1] (still valid bounds, as ρ_m is a probability), with S0 = Σ p_i²
    and s̃ the support of p(0), which must have at least two tokens. ``p0`` is (vocab,) or
    (contexts, vocab); ``m`` an int ≥ 1 or an int array. Returns (lower, upper), each of the
    shape of ``m`` (with a leading contexts axis for a matrix ``p0``).
    """
    where = _where("collapse_prob_bounds")
    rows, single = _rows(p0, where)
    n = check_int(n, "n", low=1, where=where)
    m = _generations(m, "collapse_prob_bounds", low=1)
    pairs = [_collapse_prob_bounds(*_nontrivial(row, where), n, m) for row in rows]
    lower, upper = np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])
    return (lower[0], upper[0]) if single else (lower, upper)


def _collapse_prob_bounds(S0: float, support: int, n: int,
                          m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    decay = np.exp(m * math.log1p(-1.0 / n)) if n > 1 else np.zeros(m.shape)
    lower = 1.0 - n * (1.0 - S0) * decay
    upper = 1.0 - (1.0 - S0) / (1.0 - 1.0 / support) * decay
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)


def collapse_time_bounds(p0: object, *, n: int) -> tuple[float, float] | tuple[np.ndarray,
                                                                               np.ndarray]:
    """Theorem 1, eq. 8: 1 + (1 − S0)/(1 − 1/s̃) (n − 1) ≤ E[T] ≤ 1 + (1 − S0) n (n − 1).

    T is the first generation m ≥ 1 at which p(m) is a Dirac mass (fully synthetic loop);
    S0 = Σ p_i² and s̃ the support of p(0), which must have at least two tokens. ``p0`` is
    (vocab,) (returns two floats) or (contexts, vocab) (two arrays (contexts,)).
    """
    where = _where("collapse_time_bounds")
    rows, single = _rows(p0, where)
    n = check_int(n, "n", low=1, where=where)
    pairs = np.array([_collapse_time_bounds(*_nontrivial(row, where), n) for row in rows])
    if single:
        return float(pairs[0, 0]), float(pairs[0, 1])
    return pairs[:, 0], pairs[:, 1]


def _collapse_time_bounds(S0: float, support: int, n: int) -> tuple[float, float]:
    lower = 1.0 + (1.0 - S0) / (1.0 - 1.0 / support) * (n - 1)
    upper = 1.0 + (1.0 - S0) * n * (n - 1)
    return float(lower), float(upper)


def absorption_probabilities(p0: object) -> np.ndarray:
    """Proposition 1: P(lim p(m) = δ_i) = p_i in the fully synthetic loop (the token a run is
    absorbed in is distributed as p(0)). Shape (vocab,) or (contexts, vocab), the same out."""
    return check_probabilities(p0, "p0", where=_where("absorption_probabilities")).copy()


# --------------------------------------------------------------------------------------------
# Theorem 2: partially synthetic loop
# --------------------------------------------------------------------------------------------

def expected_sigma_partial(S0: float, n: int, N: int, m: int | np.ndarray, *,
                           as_printed: bool = False) -> np.ndarray:
    """Theorem 2 (eq. 9): S_m = E‖p(m)‖₂² for the partially synthetic loop, every m ≥ 0.

    With α = n/(N+n), β = α[(1 + 1/N)α − 1/N] = n(n−1)/(N+n)², D = 1 + (1 + 1/N)α:

        S_{m+1} = (1/N)[1 + 2α − (1 − 1/N) α β^m]/D + (1 − 1/N) S0 [1 + α + α β^m / N]/D

    for m ≥ 1, S_1 = 1/N + (1 − 1/N) S0 and S_0 = S0. The last bracket reads
    ``1 + α − α β^m / N`` in the paper; that sign is a misprint: solving the paper's own
    recursion (appendix B.3, ν^(m) = a p + b p² + β ν^(m−1) from ν^(1)) gives ``+``, which
    exact enumeration confirms (tests/theory/test_paper.py). Both forms share the limit
    m → ∞. ``as_printed=True`` returns the printed form (for m ≥ 2). The formula in the
    paper's variables; ``theory.expected_sigma`` evaluates it for a p(0).
    """
    where = _where("expected_sigma_partial")
    S0 = check_float(S0, "S0", low=0.0, high=1.0, where=where)
    n = check_int(n, "n", low=1, where=where)
    N = check_int(N, "N", low=1, where=where)
    m = _generations(m, "expected_sigma_partial")
    alpha = n / (N + n)
    beta = alpha * ((1 + 1 / N) * alpha - 1 / N)
    denom = 1 + (1 + 1 / N) * alpha
    k = np.maximum(m - 1, 0).astype(float)
    beta_k = beta**k
    sign = -1.0 if as_printed else 1.0
    later = ((1 / N) * (1 + 2 * alpha - (1 - 1 / N) * alpha * beta_k) / denom
             + (1 - 1 / N) * S0 * (1 + alpha + sign * alpha * beta_k / N) / denom)
    first = 1 / N + (1 - 1 / N) * S0
    return np.where(m == 0, S0, np.where(m == 1, first, later))


# --------------------------------------------------------------------------------------------
# Theorem 3, eq. 10-11: G_n(s) and the deviation bound, in log space
# --------------------------------------------------------------------------------------------

def G_regime(n: int, s: int) -> int:
    """Which case of eq. 10 applies: 1 if C0 n/e + 2 ≤ s, 2 if C0 n/4 + 2 ≤ s < C0 n/e + 2,
    3 if s < C0 n/4 + 2."""
    n = check_int(n, "n", low=1, where=_where("G_regime"))
    s = check_int(s, "s", low=1, where=_where("G_regime"))
    if C0 * n / math.e + 2 <= s:
        return 1
    if C0 * n / 4 + 2 <= s:
        return 2
    return 3


def log_G(n: int, s: int) -> float:
    """ln G_n(s) of eq. 10 (= eq. 13 of Lemma 1): finite for s ≥ 2; −inf for s = 1.

    Case 1: ln C1 + ln s + C0 n/(2e); case 2: ln C1 + ln s + (s/2) ln(C0 n/s);
    case 3: ln(2^s − 2) = s ln 2 + ln(1 − 2^(1−s)).
    """
    regime = G_regime(n, s)
    if regime == 1:
        return math.log(C1) + math.log(s) + C0 * n / (2 * math.e)
    if regime == 2:
        return math.log(C1) + math.log(s) + 0.5 * s * math.log(C0 * n / s)
    if s == 1:
        return -math.inf  # 2^1 − 2 = 0: one token, no deviation is possible
    return s * math.log(2.0) + math.log1p(-(2.0 ** (1 - s)))


def log_theorem3_bound(p0: object, *, n: int, N: int) -> float:
    """Theorem 3: ln of (1/N) √(π n / 2) G_n(s) (G_n of eq. 10), which bounds
    E‖p(m) − p(1)‖₁ of the partially synthetic loop for all m ≥ 2.

    s is the vocabulary size (``p0.shape[-1]``): the bound depends neither on m nor on the
    values of p(0); the true deviation never exceeds 2.
    """
    where = _where("log_theorem3_bound")
    s = check_probabilities(p0, "p0", where=where).shape[-1]
    n = check_int(n, "n", low=1, where=where)
    N = check_int(N, "N", low=1, where=where)
    return _log_theorem3(n, N, s)


def _log_theorem3(n: int, N: int, s: int) -> float:
    N = check_int(N, "N", low=1, where=_where("log_theorem3_bound"))
    g = log_G(n, s)
    return -math.log(N) + 0.5 * math.log(math.pi * n / 2) + g


def eq11_max_n(s: int, N: int, epsilon: float) -> float:
    """Eq. 11: n ≤ 2π e⁻² min[s − 2, ln(√2 π N ε / (6 e s))] keeps E‖p(m) − p(1)‖₁ ≤ ε.

    Returns the real-valued right-hand side (negative when no n ≥ 1 is certified). It follows
    from Theorem 3's first case by √(πn/2) ≤ √(π/2) e^{C0 n/(2e)}, so it is sufficient, and
    more conservative than inverting Theorem 3 itself (``largest_safe_n_theorem3``).
    """
    where = _where("eq11_max_n")
    s = check_int(s, "s", low=2, where=where)
    N = check_int(N, "N", low=1, where=where)
    epsilon = check_float(epsilon, "epsilon", low=0.0, low_open=True, where=where)
    arg = math.sqrt(2) * math.pi * N * epsilon / (6 * math.e * s)
    return 2 * math.pi * math.exp(-2) * min(s - 2.0, math.log(arg))


def largest_safe_n_eq11(s: int, N: int, epsilon: float) -> int:
    """The largest integer n allowed by eq. 11 (0 when eq. 11 allows no synthetic sample)."""
    return max(0, math.floor(eq11_max_n(s, N, epsilon)))


def largest_safe_n_theorem3(s: int, N: int, epsilon: float, *, n_max: int = 10**12) -> int:
    """The largest n whose Theorem 3 bound (1/N)√(πn/2) G_n(s) is ≤ ε, by bisection (the
    bound increases with n); 0 if even n = 1 is not certified."""
    where = _where("largest_safe_n_theorem3")
    s = check_int(s, "s", low=2, where=where)
    N = check_int(N, "N", low=1, where=where)
    epsilon = check_float(epsilon, "epsilon", low=0.0, low_open=True, where=where)
    target = math.log(epsilon)
    if _log_theorem3(1, N, s) > target:
        return 0
    lo, hi = 1, 2
    while hi < n_max and _log_theorem3(hi, N, s) <= target:
        lo, hi = hi, hi * 2
    hi = min(hi, n_max)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _log_theorem3(mid, N, s) <= target:
            lo = mid
        else:
            hi = mid
    return lo


# --------------------------------------------------------------------------------------------
# Theorem 4, Lemma 1: φ, π_p, λ, ζ
# --------------------------------------------------------------------------------------------

def phi(x: float | np.ndarray) -> np.ndarray:
    """φ(x) = ln((1 − x)/x)/(1 − 2x) on [0, 1/2], φ(1/2) = 2, φ(0) = +inf (appendix A).

    Computed as 2 atanh(u)/u with u = 1 − 2x, which is exact at and near x = 1/2.
    """
    x = np.asarray(x, dtype=np.float64)
    if np.any((x < 0) | (x > 0.5)) or np.any(np.isnan(x)):
        raise ValueError(f"The 'x' parameter of {_where('phi')} must be in the range [0, 0.5]. "
                         f"Got {x!r} instead.")
    u = 1.0 - 2.0 * x
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(u < 1e-8, 2.0 + (2.0 / 3.0) * u * u, 2.0 * np.arctanh(u) / u)
    return np.where(x == 0, np.inf, out)


def zeta(expected_lambda1: float, n: int, N: int) -> float:
    """Theorem 4: ζ = 1/2 − (1/2 − 2 E[λ1]) (N/(N+n))², with λ1 = max_A p(1)(A) p(1)(Aᶜ).

    An upper bound on E[λ1] in place of E[λ1] keeps Theorem 4 valid (φ is decreasing).
    """
    where = _where("zeta")
    lam = check_float(expected_lambda1, "expected_lambda1", low=0.0, high=0.25, where=where)
    n = check_int(n, "n", low=0, where=where)
    N = check_int(N, "N", low=1, where=where)
    return 0.5 - (0.5 - 2.0 * lam) * (N / (N + n)) ** 2


@dataclass(frozen=True)
class PartitionValue:
    """π_p of eq. 12 (or a bracket for it): the largest p(A) ≤ 1/2 over subsets A.

    ``value`` is exact when ``exact`` is true; otherwise ``lower ≤ π_p ≤ upper`` is certified
    and ``value`` is the lower end (a sum that some subset attains or nearly attains).
    """

    value: float
    lower: float
    upper: float
    exact: bool
    method: str

    @property
    def lam(self) -> float:
        """λ = max_A p(A)(1 − p(A)) = π(1 − π), since x(1 − x) increases on [0, 1/2]."""
        return self.value * (1.0 - self.value)


def _subset_sums_below(weights: np.ndarray, cap: int) -> int:
    """Largest subset sum ≤ cap of non-negative integer weights (bitset dynamic programme)."""
    bits, mask = 1, (1 << (cap + 1)) - 1
    for w in weights.tolist():
        if 0 < w <= cap:
            bits |= (bits << w) & mask
    return bits.bit_length() - 1


def balanced_partition_counts(counts: np.ndarray) -> int:
    """Exact π for integer counts c (total N): the largest Σ_{i∈A} c_i ≤ N/2.

    π_p of the empirical distribution c/N is this value divided by N (eq. 12).
    Shape (k,) of non-negative ints. Cost O(k N / 64) bit operations.
    """
    counts = np.asarray(counts)
    if counts.dtype.kind not in "iu" or np.any(counts < 0):
        raise ValueError(f"The 'counts' parameter of {_where('balanced_partition_counts')} "
                         f"must be non-negative integers. Got {counts!r} instead.")
    total = int(counts.sum())
    return _subset_sums_below(counts[counts > 0].astype(np.int64), total // 2)


def _greedy_half(p: np.ndarray) -> float:
    """A subset sum ≤ 1/2 found greedily (largest items first): a lower bound on π_p."""
    acc = 0.0
    for w in np.sort(p)[::-1].tolist():
        if acc + w <= 0.5:
            acc += w
    return acc


def _meet_in_middle(p: np.ndarray) -> float:
    half = p.size // 2

    def sums(part: np.ndarray) -> np.ndarray:
        out = np.zeros(1)
        for w in part:
            out = np.concatenate([out, out + w])
        return out

    left, right = sums(p[:half]), np.sort(sums(p[half:]))
    idx = np.searchsorted(right, 0.5 - left, side="right") - 1
    ok = idx >= 0
    return float(np.max(left[ok] + right[idx[ok]]))


def pi_p(p0: object, *, denominator: int | None = None) -> PartitionValue:
    """π_p = max_A min(p(A), 1 − p(A)) of eq. 12 (Lemma 1, Theorem 4) for one probability
    vector p = ``p0`` (vocab,).

    Exact when: the largest mass is ≥ 1/2 (then π_p = 1 − max p); p·denominator are integers
    (the empirical distribution of ``denominator`` samples: bitset subset-sum on counts); the
    support has at most 32 tokens (meet in the middle). Otherwise a certified bracket: the
    subset-sum on p rounded down and up to the grid 2^-22 gives
    [(best_ceil − s̃)/K, (best_floor + s̃)/K], intersected with [greedy, 1/2]; for supports
    above 20 000 the greedy bracket [greedy, 1/2] alone (its width is below the smallest masses).
    """
    where = _where("pi_p")
    p = _one(p0, where)
    q = p[p > 0]
    top = float(q.max())
    if top >= 0.5:
        v = 1.0 - top
        return PartitionValue(v, v, v, True, "largest mass ≥ 1/2")
    if denominator is not None:
        denominator = check_int(denominator, "denominator", low=1, where=where)
        counts = np.rint(q * denominator)
        if np.max(np.abs(counts - q * denominator)) > 1e-6:
            raise ValueError(f"The 'denominator' parameter of {where} must make p·denominator "
                             f"integers. Got {denominator} instead.")
        v = balanced_partition_counts(counts.astype(np.int64)) / denominator
        return PartitionValue(v, v, v, True, "subset-sum on counts")
    if q.size <= EXACT_PARTITION_SUPPORT:
        v = _meet_in_middle(q)
        return PartitionValue(v, v, v, True, "meet in the middle")
    greedy = _greedy_half(q)
    if q.size > GRID_PARTITION_SUPPORT:
        return PartitionValue(greedy, greedy, 0.5, greedy == 0.5, "greedy bracket")
    K = PARTITION_SCALE
    best_floor = _subset_sums_below(np.floor(q * K).astype(np.int64), K // 2)
    best_ceil = _subset_sums_below(np.ceil(q * K).astype(np.int64), K // 2)
    lower = max(greedy, (best_ceil - q.size) / K)
    upper = min(0.5, (best_floor + q.size) / K)
    return PartitionValue(lower, lower, upper, lower == upper, "subset-sum on a 2^-22 grid")


def lambda_p(p: np.ndarray, *, denominator: int | None = None) -> tuple[float, float]:
    """λ = max_A p(A) p(Aᶜ) = π_p (1 − π_p), as a certified (lower, upper) pair (equal when
    π_p is exact). See ``pi_p``."""
    part = pi_p(p, denominator=denominator)
    return part.lower * (1 - part.lower), part.upper * (1 - part.upper)


def expected_lambda_empirical(p0: np.ndarray, N: int, *, n_draws: int = 400,
                              seed: SeedLike = 0) -> tuple[float, float]:
    """E[λ1] of Theorem 4, λ1 = λ of p(1) = counts/N with counts ~ Multinomial(N, p(0)).

    Each draw's λ is exact (subset-sum on its counts); the expectation over the multinomial
    is a Monte Carlo mean over ``n_draws`` corpora. Returns (mean, standard error).
    """
    where = _where("expected_lambda_empirical")
    p0 = check_probabilities(p0, "p0", where=where)
    N = check_int(N, "N", low=1, where=where)
    n_draws = check_int(n_draws, "n_draws", low=2, where=where)
    rng = generator(seed)
    draws = rng.multinomial(N, p0[p0 > 0], size=n_draws)
    lam = np.empty(n_draws)
    for j, counts in enumerate(draws):
        top = counts.max()
        best = N - top if 2 * top >= N else balanced_partition_counts(counts)
        lam[j] = (best / N) * (1 - best / N)
    return float(lam.mean()), float(lam.std(ddof=1) / math.sqrt(n_draws))


def log_theorem4_bound(p0: object, *, n: int, N: int, expected_lambda1: float | None = None,
                       n_draws: int = 200, seed: SeedLike = 0) -> float:
    """Theorem 4: ln of (1/N) √(n π / φ(ζ)) G_n(s), which bounds E‖p(k+1) − p(1)‖₁ of the
    partially synthetic loop for k ≥ 1; ζ as in ``zeta``, G_n of eq. 10, s = ``p0.size``.

    ``expected_lambda1``: E[λ1] or an upper bound on it (the bound stays valid); by default
    the Monte Carlo estimate ``expected_lambda_empirical(p0, N, n_draws=..., seed=...)``.
    With E[λ1] = 1/4 this is Theorem 3 (φ(1/2) = 2). ``p0`` is (vocab,).
    """
    where = _where("log_theorem4_bound")
    p = _one(p0, where)
    n = check_int(n, "n", low=1, where=where)
    N = check_int(N, "N", low=1, where=where)
    if expected_lambda1 is None:
        expected_lambda1, _ = expected_lambda_empirical(p, N, n_draws=n_draws, seed=seed)
    return _log_theorem4(n, N, p.size, expected_lambda1)


def _log_theorem4(n: int, N: int, s: int, expected_lambda1: float) -> float:
    z = zeta(expected_lambda1, n, N)
    return (-math.log(N) + 0.5 * math.log(n * math.pi / float(phi(z))) + log_G(n, s))


def log_lemma1_bound(p0: object, *, n: int, epsilon: float) -> float:
    """Lemma 1: ln of exp(−n φ(π_p) ε²/4) G_n(s) (π_p of eq. 12, G_n of eq. 13), which bounds
    P(‖p̂ − p‖₁ ≥ ε) for the empirical distribution p̂ of n samples of p = ``p0`` (vocab,),
    s = ``p0.size``. π_p is the upper end of ``pi_p(p0)`` (φ decreases: the bound stays valid).
    """
    where = _where("log_lemma1_bound")
    p = _one(p0, where)
    epsilon = check_float(epsilon, "epsilon", low=0.0, low_open=True, where=where)
    return _log_lemma1(n, p.size, epsilon, pi_p(p).upper)


def _log_lemma1(n: int, s: int, epsilon: float, pi: float) -> float:
    epsilon = check_float(epsilon, "epsilon", low=0.0, low_open=True,
                          where=_where("log_lemma1_bound"))
    return -n * float(phi(pi)) * epsilon**2 / 4 + log_G(n, s)


def log_weissman_bound(p0: object, *, n: int, epsilon: float) -> float:
    """Weissman et al. (2003), the bound Lemma 1 improves on when s/n is large: ln of
    (2^s − 2) exp(−n φ(π_p) ε²/4) ≥ ln P(‖p̂ − p‖₁ ≥ ε), valid for all n and s; π_p (eq. 12)
    and s as in ``log_lemma1_bound``."""
    where = _where("log_weissman_bound")
    p = _one(p0, where)
    epsilon = check_float(epsilon, "epsilon", low=0.0, low_open=True, where=where)
    return _log_weissman(n, p.size, epsilon, pi_p(p).upper)


def _log_weissman(n: int, s: int, epsilon: float, pi: float) -> float:
    where = _where("log_weissman_bound")
    n = check_int(n, "n", low=1, where=where)
    s = check_int(s, "s", low=1, where=where)
    epsilon = check_float(epsilon, "epsilon", low=0.0, low_open=True, where=where)
    log_count = -math.inf if s == 1 else s * math.log(2.0) + math.log1p(-(2.0 ** (1 - s)))
    return -n * float(phi(pi)) * epsilon**2 / 4 + log_count
