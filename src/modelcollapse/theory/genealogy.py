"""Exact law of the fully-synthetic collapse time T, for any p(0), vocabulary and n.

The fact behind it (docs/collapse_time_law.md has the proof). In the fully-synthetic loop
(paper §2.2) generation 1 is n i.i.d. draws from p(0), and every later sample copies the token
of a uniformly chosen sample of the previous generation (drawing from the fitted model of
eq. 2, the empirical distribution, is exactly that). Trace the n samples of generation m
back: they descend from A_m distinct samples of generation 1, whose tokens are i.i.d. p(0)
and independent of the genealogy. Hence, for m ≥ 1,

* ρ_m = P(p(m) is a Dirac mass) = P(T ≤ m) = E[Σ_i p_i^{A_m}]                (paper eq. 7)
* P(T > m) = E[w(A_m)],  w(k) = 1 − Σ_i p_i^k = Σ_i p_i (1 − p_i^{k−1})
* P(token i alive in p(m)) = 1 − E[(1 − p_i)^{A_m}],
* P(p(m) = δ_i) = E[p_i^{A_m}] → p_i                                      (Proposition 1)

and A_m is a Markov chain on {1, …, n}, A_1 = n, that only goes down: j lineages pick their
parents uniformly among n, so the number k of distinct parents has the occupancy law

    P(j → k) = S(j, k) · n!/(n−k)! / n^j        (S = Stirling numbers of the second kind).

Its rows come from the Stirling recurrence S(j+1, k) = k S(j, k) + S(j, k−1) multiplied
through by n!/(n−k)!/n^{j+1}: P(j+1, k) = (k/n) P(j, k) + ((n−k+1)/n) P(j, k−1), carried out
in log space (no overflow of S, no underflow of n^−j). The chain is triangular, so E[T] and
E[T²] solve exactly row by row (O(n²) time, O(n) memory), and the whole law follows by
propagating the law of A_m forward.

Moments from a few lineages rather than all n (E[Σ_i (p_i^{(m)})^r], eq. 6; S_m of every
fresh-draw scenario and of the partially-synthetic loop, eq. 9) are in :mod:`.lineage_pairs`,
built on this chain.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .._validation import check_float, check_int, check_probabilities

__all__ = [
    "CollapseTimeLaw",
    "collapse_time_law",
    "lineage_pmf",
    "occupancy_log_row",
]

#: Rows of the occupancy kernel held as a dense block (float64, DENSE_ROWS² entries, 32 MiB);
#: rows above it are rebuilt by the recurrence when the law needs them.
DENSE_ROWS = 2048
#: Mass of the top of the law of A_m dropped per generation when it is below this, and below
#: 1e-8 × tol (the chain only goes down, so what is dropped bounds the error on every later
#: probability; ``CollapseTimeLaw.truncation_error`` reports the total).
DROP_PER_STEP = 1e-18
#: Entries (contexts × tokens × ancestor counts) per block when evaluating Σ_i f(p_i, k).
_BLOCK_ENTRIES = 1 << 22


# ---------------------------------------------------------------------------------------------
# The occupancy kernel P(j → k) = S(j, k) n!/(n−k)!/n^j, in log space


def _log_steps(n: int) -> tuple[np.ndarray, np.ndarray]:
    """log(k/n) and log((n−k+1)/n) for k = 1 … n, indexed k−1 (the two ways a new lineage
    lands: on one of the k parents already taken, or on one of the n−k+1 still free)."""
    idx = np.arange(n, dtype=np.float64)
    stay = np.log((idx + 1.0) / n)
    with np.errstate(divide="ignore"):  # log1p(−1) = −inf: no (n+1)-th distinct parent
        new = np.log1p(-idx / n)
    return stay, new


def _next_log_row(row: np.ndarray, stay: np.ndarray, new: np.ndarray, n: int) -> np.ndarray:
    """Row j+1 of log P from row j (length min(j, n)), by the Stirling recurrence."""
    j = row.size
    out = np.full(min(j + 1, n), -np.inf)
    out[:j] = stay[:j] + row
    tail = new[1 : out.size] + row[: out.size - 1]
    out[1:] = np.logaddexp(out[1:], tail)
    return out


def _log_rows(n: int, last: int, *, first_row: np.ndarray | None = None,
              first: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (j, log P(j, ·)) for j = first … last; row j has min(j, n) entries (k = 1 …)."""
    stay, new = _log_steps(n)
    row = np.zeros(1) if first_row is None else first_row
    for j in range(first, last + 1):
        if j > first:
            row = _next_log_row(row, stay, new, n)
        yield j, row


def occupancy_log_row(n: int, j: int) -> np.ndarray:
    """log P(j → k) for k = 1 … min(j, n): the log-probability that j lineages choosing their
    parents uniformly among n samples pick exactly k distinct parents.

    Returns a float64 array of shape (min(j, n),); entry k−1 is log[S(j,k) n!/(n−k)!/n^j].
    """
    n = check_int(n, "n", low=1, where="occupancy_log_row")
    j = check_int(j, "j", low=1, where="occupancy_log_row")
    (_, row), = deque(_log_rows(n, j), maxlen=1)  # keep only the last row: O(n) memory
    return row


class _Kernel:
    """P(j → k) for one n: a dense block of the first ``DENSE_ROWS`` rows, the rest on demand."""

    def __init__(self, n: int, dense_rows: int = DENSE_ROWS):
        self.n = n
        self.rows = min(n, dense_rows)
        block = np.zeros((self.rows, self.rows))
        for j, row in _log_rows(n, self.rows):
            block[j - 1, : row.size] = np.exp(row)
            last = row
        self.block = block            # (rows, rows), lower triangular, rows sum to 1
        self._last_log_row = last     # log row ``rows``: where the recurrence resumes

    def step(self, pi: np.ndarray, top: int) -> np.ndarray:
        """Law of the next ancestor count: pi (n,) with mass on k ≤ top → (n,)."""
        out = np.zeros(self.n)
        low = min(top, self.rows)
        out[:low] = pi[:low] @ self.block[:low, :low]
        if top > self.rows:
            for j, row in _log_rows(self.n, top, first_row=self._last_log_row, first=self.rows):
                if j > self.rows and pi[j - 1] > 0:
                    out[: row.size] += pi[j - 1] * np.exp(row)
        return out


# ---------------------------------------------------------------------------------------------
# Functions of the ancestor count k, per context


def _support_logs(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log p and log(1 − p) on the union support, shape (contexts, tokens); log 0 = −inf."""
    cols = np.flatnonzero((p > 0).any(axis=0))
    q = p[:, cols]
    with np.errstate(divide="ignore"):
        return np.log(q), np.log1p(-q)


def _ancestor_weights(p: np.ndarray, kmax: int) -> dict[str, np.ndarray]:
    """For k = 1 … kmax, per context (arrays (contexts, kmax), index k−1):

    * ``survive``: w(k) = P(k i.i.d. tokens are not all equal) = Σ_i p_i (1 − p_i^{k−1}),
      summed term by term (each term ≥ 0), never as 1 − Σ_i p_i^k, which floors at rounding;
    * ``dirac``:   z(k) = Σ_i p_i^k;
    * ``support``: u(k) = Σ_i (1 − (1 − p_i)^k), the expected number of distinct tokens.
    """
    logp, log1m = _support_logs(p)
    q = np.exp(logp)
    out = {name: np.zeros((p.shape[0], kmax)) for name in ("survive", "dirac", "support")}
    block = max(1, _BLOCK_ENTRIES // max(1, logp.size))  # bounds the (contexts, tokens, k) temps
    for start in range(1, kmax + 1, block):
        k = np.arange(start, min(start + block, kmax + 1), dtype=np.float64)
        cols = slice(start - 1, start - 1 + k.size)
        with np.errstate(invalid="ignore"):  # (k−1)·(−inf) at k = 1 for p = 0: masked by q = 0
            excess = -np.expm1((k - 1.0)[None, None, :] * logp[:, :, None])
        excess = np.where(q[:, :, None] > 0, excess, 0.0)
        out["survive"][:, cols] = np.einsum("ct,ctk->ck", q, excess)
        out["dirac"][:, cols] = np.exp(k[None, None, :] * logp[:, :, None]).sum(axis=1)
        out["support"][:, cols] = (-np.expm1(k[None, None, :] * log1m[:, :, None])).sum(axis=1)
    out["survive"][:, 0] = 0.0  # one ancestor: a single token, always a Dirac mass
    return out


# ---------------------------------------------------------------------------------------------
# E[T] and E[T²] by the triangular solve


def _solve_moments(n: int, survive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """G(j) = E Σ_{t≥0} w(A'_t) and H(j) = E Σ_{t≥0} t w(A'_t) for the chain started at
    A'_0 = j, solved row by row (the kernel is lower triangular):

        G(j) (1 − P(j,j)) = w(j) + Σ_{k<j} P(j,k) G(k)
        H(j) (1 − P(j,j)) = P(j,j) G(j) + Σ_{k<j} P(j,k) (H(k) + G(k)).

    ``survive`` is (contexts, n); returns G(n), H(n), each (contexts,). O(n²) time, O(n·contexts)
    memory: one kernel row at a time, never the n × n matrix.
    """
    contexts = survive.shape[0]
    g = np.zeros((n, contexts))
    gh = np.zeros((n, contexts))  # G + H, the quantity the H-recurrence sums over
    for j, row in _log_rows(n, n):
        if j == 1:
            continue  # one lineage stays one: w(1) = 0, G(1) = H(1) = 0
        below = np.exp(row[: j - 1])
        stay = np.exp(row[j - 1])
        leave = -np.expm1(row[j - 1])  # 1 − P(j,j) without cancellation
        g[j - 1] = (survive[:, j - 1] + below @ g[: j - 1]) / leave
        h = (stay * g[j - 1] + below @ gh[: j - 1]) / leave
        gh[j - 1] = g[j - 1] + h
    return g[n - 1], gh[n - 1] - g[n - 1]


# ---------------------------------------------------------------------------------------------
# Propagation of the law of A_m


def _trim_top(pi: np.ndarray, top: int, budget: float) -> tuple[int, float]:
    """Largest k such that the states above it hold less than ``budget``; zero those."""
    tail = np.cumsum(pi[:top][::-1])
    keep = top - int(np.searchsorted(tail, budget, side="left"))
    keep = max(keep, 1)
    dropped = float(pi[keep:top].sum())
    pi[keep:top] = 0.0
    return keep, dropped


def _propagate(kernel: _Kernel, start: int, steps: int, weights: np.ndarray, *, budget: float,
               stop: float | None = None, stop_rows: int = 0) -> tuple[np.ndarray, float]:
    """E[f(A_t)] along the ancestor chain started at A_0 = ``start``, for t = 0 … steps.

    ``weights`` (rows, n) holds functions f of the ancestor count (index k−1). Returns
    (rows, t_end+1) values and the total mass dropped by trimming (at most ``budget`` per
    step). With ``stop``, the propagation ends at the first t where the first ``stop_rows``
    rows are all ≤ stop.
    """
    n = kernel.n
    pi = np.zeros(n)
    pi[start - 1] = 1.0
    top = start
    values = np.zeros((weights.shape[0], steps + 1))
    values[:, 0] = weights[:, start - 1]
    dropped = 0.0

    def done(t: int) -> bool:
        return stop is not None and bool(np.all(values[:stop_rows, t] <= stop))

    if done(0):
        return values[:, :1], dropped
    for t in range(1, steps + 1):
        pi = kernel.step(pi, top)
        top, lost = _trim_top(pi, top, budget)
        dropped += lost
        values[:, t] = weights[:, :top] @ pi[:top]
        if done(t):
            return values[:, : t + 1], dropped
    return values, dropped


def lineage_pmf(n: int, start: int, steps: int) -> np.ndarray:
    """Law of the number of distinct ancestors of ``start`` lineages after each of ``steps``
    generations of uniform parent choice among ``n`` samples (the occupancy chain).

    Returns (steps+1, start): entry [t, k−1] = P(A_t = k | A_0 = start); for t ≥ 1 only
    k ≤ n can carry mass. Dense kernel: meant for n up to a few thousand.
    """
    n = check_int(n, "n", low=1, where="lineage_pmf")
    start = check_int(start, "start", low=1, where="lineage_pmf")
    steps = check_int(steps, "steps", low=0, where="lineage_pmf")
    out = np.zeros((steps + 1, start))
    out[0, start - 1] = 1.0
    if steps == 0:
        return out
    first = np.exp(occupancy_log_row(n, start))   # more lineages than samples: k ≤ n
    kernel = _Kernel(n)
    pi = np.zeros(n)
    pi[: first.size] = first
    top = first.size
    out[1, :top] = first
    for t in range(2, steps + 1):
        pi = kernel.step(pi, top)
        out[t, :top] = pi[:top]
    return out


def _as_contexts(p0: object, where: str) -> tuple[np.ndarray, bool]:
    p = check_probabilities(p0, "p0", where=where)
    return (p[None, :], True) if p.ndim == 1 else (p, False)


# ---------------------------------------------------------------------------------------------
# The collapse-time law


@dataclass(frozen=True, eq=False)
class CollapseTimeLaw:
    """Exact law of the fully-synthetic collapse time T (paper §3.1) for one p(0) and n.

    ``mean`` and ``sd`` come from the triangular solve (exact to rounding). The law itself —
    ``collapse_prob`` ρ_m, ``survival`` P(T > m), ``pmf`` P(T = m) and ``expected_support``
    E[#tokens alive in p(m)], all indexed by generation m = 0 … M (m = 0 first) — is computed
    on first access: M is the first generation with P(T > M) ≤ ``tol`` for every context, or
    ``max_generations`` when given. At m = 0: ρ_0 = 1 if p(0) is a Dirac mass else 0,
    P(T > 0) = 1 (T ≥ 1 by definition), and the support is that of p(0).

    For a vector p0 the numbers are scalars and the arrays are (M+1,); for a matrix p0
    (contexts, vocab) every context is its own chain with n samples: scalars become
    (contexts,) arrays and the arrays (contexts, M+1).
    """

    p0: np.ndarray
    n: int
    tol: float
    max_generations: int | None
    mean: float | np.ndarray
    sd: float | np.ndarray
    _single: bool = field(repr=False)

    # -- the law, computed once on first access ------------------------------------------------
    @cached_property
    def _law(self) -> dict[str, np.ndarray]:
        p = self.p0[None, :] if self._single else self.p0
        contexts = p.shape[0]
        dirac0 = p.max(axis=1) >= 1.0
        if self.max_generations is not None:
            steps = self.max_generations - 1
        else:
            steps = _generations_bound(self.n, p, self.tol)
        # weights are stacked as [survive × contexts, dirac × contexts, support × contexts]
        weights = _ancestor_weights(p, self.n)
        stacked = np.concatenate([weights["survive"], weights["dirac"], weights["support"]])
        stop = None if self.max_generations is not None else self.tol
        if steps >= 0:
            values, dropped = _propagate(_Kernel(self.n), self.n, steps, stacked,
                                         budget=self._budget, stop=stop, stop_rows=contexts)
        else:  # max_generations = 0: only p(0)
            values, dropped = np.zeros((3 * contexts, 0)), 0.0
        surv, dirac, support = np.split(values, 3)
        dirac = np.minimum(dirac, 1.0)  # a law summing to 1 + rounding must not give ρ > 1
        first = np.ones((contexts, 1))
        law = {
            "survival": np.concatenate([first, surv], axis=1),
            "collapse_prob": np.concatenate([dirac0[:, None].astype(float), dirac], axis=1),
            "expected_support": np.concatenate(
                [np.count_nonzero(p > 0, axis=1)[:, None].astype(float), support], axis=1),
            "dropped": np.array(dropped),
        }
        for arr in law.values():
            arr.flags.writeable = False  # handed out as is: the law is frozen like its owner
        return law

    @property
    def _budget(self) -> float:
        return min(DROP_PER_STEP, 1e-8 * self.tol)

    def _out(self, arr: np.ndarray) -> np.ndarray:
        return arr[0] if self._single else arr

    @property
    def survival(self) -> np.ndarray:
        """P(T > m), m = 0 … M; each entry is a sum of non-negative terms (relative accuracy)."""
        return self._out(self._law["survival"])

    @property
    def collapse_prob(self) -> np.ndarray:
        """ρ_m = P(p(m) is a Dirac mass) (eq. 7), m = 0 … M."""
        return self._out(self._law["collapse_prob"])

    @property
    def expected_support(self) -> np.ndarray:
        """E[number of tokens with p_i^{(m)} > 0], m = 0 … M."""
        return self._out(self._law["expected_support"])

    @property
    def pmf(self) -> np.ndarray:
        """P(T = m), m = 0 … M (entry 0 is 0)."""
        s = self._law["survival"]
        out = np.zeros_like(s)
        out[:, 1:] = np.clip(s[:, :-1] - s[:, 1:], 0.0, None)
        return self._out(out)

    @property
    def generations(self) -> np.ndarray:
        """The generation index m = 0 … M of every array."""
        return np.arange(self._law["survival"].shape[1])

    @property
    def tail(self) -> float | np.ndarray:
        """P(T > M): the mass the computed law leaves out."""
        return self._out(self._law["survival"][:, -1])

    @property
    def truncation_error(self) -> float:
        """Bound on the absolute error of every law entry from trimming negligible states."""
        return float(self._law["dropped"])

    @property
    def mean_series(self) -> float | np.ndarray:
        """Σ_{m=0}^{M} P(T > m): E[T] from the law, short of the tail beyond M."""
        return self._out(self._law["survival"].sum(axis=1))

    @property
    def sd_series(self) -> float | np.ndarray:
        """sd(T) from Σ_m (2m+1) P(T > m) − (Σ_m P(T > m))², truncated at M."""
        s = self._law["survival"]
        m = np.arange(s.shape[1])
        second = ((2 * m + 1) * s).sum(axis=1)
        return self._out(np.sqrt(np.maximum(second - s.sum(axis=1) ** 2, 0.0)))

    def quantile(self, q: float) -> int | np.ndarray:
        """Smallest m with P(T ≤ m) ≥ q (per context)."""
        q = check_float(q, "q", low=0.0, high=1.0, where="CollapseTimeLaw.quantile")
        s = self._law["survival"]
        # T ≥ 1, so m = 0 never qualifies even when P(T ≤ 0) = 0 ≥ q = 0.
        ok = s[:, 1:] <= 1.0 - q
        if not np.all(ok.any(axis=1)):
            raise ValueError(f"The 'q' parameter of CollapseTimeLaw.quantile is beyond the "
                             f"computed law (P(T > {s.shape[1] - 1}) = {s[:, -1].max():.3g}); "
                             f"lower tol or raise max_generations. Got {q!r} instead.")
        m = ok.argmax(axis=1) + 1
        return int(m[0]) if self._single else m

    def dirac_token_prob(self, m: int) -> np.ndarray:
        """P(p(m) = δ_i) = E[p_i^{A_m}] per token, (vocab,) or (contexts, vocab).

        Sums over tokens to ρ_m and tends to p_i as m grows (Proposition 1).
        """
        m = check_int(m, "m", low=0, where="CollapseTimeLaw.dirac_token_prob")
        p = self.p0[None, :] if self._single else self.p0
        if m == 0:
            out = np.where(p >= 1.0, 1.0, 0.0)
            return self._out(out)
        kernel = _Kernel(self.n)
        pi = np.zeros(self.n)
        pi[-1] = 1.0
        top = self.n
        for _ in range(m - 1):
            pi = kernel.step(pi, top)
            top, _ = _trim_top(pi, top, self._budget)
        k = np.arange(1, top + 1, dtype=np.float64)
        with np.errstate(divide="ignore"):
            logp = np.log(p)
        powers = np.exp(logp[:, :, None] * k[None, None, :])  # (contexts, vocab, top)
        return self._out(powers @ pi[:top])


def _generations_bound(n: int, p: np.ndarray, tol: float) -> int:
    """Generations after which P(T > m) ≤ tol for sure: eq. 7's bound
    P(T > m) ≤ n (1 − S0) (1 − 1/n)^m (Theorem 1, proof in appendix B.2), minus one step
    because the propagation starts at m = 1."""
    if n == 1:
        return 0
    excess = float(np.max(n * (1.0 - np.sum(p * p, axis=1))))
    if excess <= tol:
        return 1
    return int(np.ceil(np.log(tol / excess) / np.log1p(-1.0 / n))) + 1


def collapse_time_law(p0: object, *, n: int, tol: float = 1e-10,
                      max_generations: int | None = None) -> CollapseTimeLaw:
    """The exact law of T, the first generation whose model is a Dirac mass, in the
    fully-synthetic loop (paper §2.2, Theorem 1: ρ_m = P(T ≤ m) of eq. 7, E[T] of eq. 8,
    Proposition 1 through ``dirac_token_prob``) with n samples per generation.

    ``p0``: (vocab,) or (contexts, vocab). ``tol``: the law runs until P(T > M) ≤ tol.
    ``max_generations``: compute the law for exactly m = 0 … max_generations instead.
    E[T] and sd(T) are solved at once (O(n²) time, O(n) memory: n = 10⁴ in seconds); the
    per-generation law is computed on first access (dense kernel block up to n = 2048).
    """
    p, single = _as_contexts(p0, "collapse_time_law")
    n = check_int(n, "n", low=1, where="collapse_time_law")
    tol = check_float(tol, "tol", low=0.0, high=1.0, low_open=True, where="collapse_time_law")
    if max_generations is not None:
        max_generations = check_int(max_generations, "max_generations", low=0,
                                    where="collapse_time_law")
    survive = _ancestor_weights(p, n)["survive"]
    g, h = _solve_moments(n, survive)
    mean = 1.0 + g
    # E[T²] = Σ_{m≥0} (2m+1) P(T > m) = 1 + 2H + 3G, so Var T = 2H + G − G².
    sd = np.sqrt(np.maximum(2.0 * h + g - g * g, 0.0))
    frozen = p[0].copy() if single else p.copy()
    frozen.flags.writeable = False
    return CollapseTimeLaw(p0=frozen, n=n, tol=tol, max_generations=max_generations,
                           mean=float(mean[0]) if single else mean,
                           sd=float(sd[0]) if single else sd, _single=single)
