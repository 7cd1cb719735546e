"""Exact finite Markov chains for small cases: the reference the simulator and the genealogy are
checked against.

* :func:`fully_synthetic_chain` — the fully-synthetic loop (paper §2.2, §3.1) on count
  vectors: X_m = n p(m) ∈ {x ∈ ℕ^s : Σx = n}, X_1 ~ Multinomial(n, p(0)),
  X_{m+1} | X_m ~ Multinomial(n, X_m / n). For s = 2 the states are the counts 0 … n of the
  first token (the binomial chain). E[T] and sd(T) by a linear solve of the absorbing chain,
  ρ_m by matrix powers, and the absorption probabilities of Proposition 1.
* :func:`window_chain` — the most-recent-K window of §4.2 for s = 2: the state is the counts of
  the first token in the last K models, so T (first Dirac model) and the absorption time
  (first of K equal Dirac models in a row) have exact means by a linear solve, and exact laws
  by propagation. Splits follow :class:`modelcollapse.scenarios.MostRecent` ``counts(m)``.

Generation 0 is the real distribution p(0): samples "from generation 0" are fresh draws.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve
from scipy.special import gammaln
from scipy.stats import binom

from .._validation import check_int, check_probabilities
from ..scenarios import MostRecent

__all__ = [
    "FullySyntheticChain",
    "WindowChain",
    "fully_synthetic_chain",
    "window_chain",
]

#: Largest state space the exact chains build (dense count chain / sparse window chain).
MAX_COUNT_STATES = 4000
MAX_WINDOW_STATES = 200_000


# ---------------------------------------------------------------------------------------------
# Fully synthetic, on count vectors


def _compositions(n: int, s: int) -> np.ndarray:
    """All x ∈ ℕ^s with Σx = n, shape (C(n+s−1, s−1), s), in lexicographic order."""
    if s == 1:
        return np.array([[n]], dtype=np.int64)
    rows = []
    for bars in itertools.combinations(range(n + s - 1), s - 1):
        edges = (-1, *bars, n + s - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(s)])
    return np.array(rows, dtype=np.int64)


def _log_multinomial(states: np.ndarray, probs: np.ndarray, n: int) -> np.ndarray:
    """log Multinomial(n, probs[a]) at states[b] for every pair: (len(probs), len(states))."""
    coef = gammaln(n + 1) - gammaln(states + 1).sum(axis=1)                  # (B,)
    # 0 · log 0 = 0, while a positive count on a zero-probability token must give −inf: a huge
    # finite stand-in for log 0 does both inside one matrix product.
    with np.errstate(divide="ignore"):
        logq = np.where(probs > 0, np.log(probs), -1e300)                     # (A, s)
    return coef[None, :] + logq @ states.T.astype(np.float64)


@dataclass(frozen=True, eq=False)
class FullySyntheticChain:
    """The fully-synthetic loop as an absorbing Markov chain on count vectors.

    ``states`` (S, s): counts over the support tokens ``tokens`` (vocabulary ids);
    ``transition`` (S, S): row-stochastic; ``initial`` (S,): law of X_1 (generation 1, n draws
    of p(0)); ``dirac`` (S,): states that are Dirac masses (absorbing).
    """

    n: int
    p0: np.ndarray
    tokens: np.ndarray
    states: np.ndarray
    transition: np.ndarray
    initial: np.ndarray
    dirac: np.ndarray = field(repr=False)

    def _fundamental_solve(self, rhs: np.ndarray) -> np.ndarray:
        live = ~self.dirac
        q = self.transition[np.ix_(live, live)]
        return np.linalg.solve(np.eye(q.shape[0]) - q, rhs)

    @property
    def mean_collapse_time(self) -> float:
        """E[T] = 1 + Σ_x P(X_1 = x) t(x), with t = (I − Q)⁻¹ 1 over the non-Dirac states."""
        live = ~self.dirac
        if not live.any():
            return 1.0
        t = self._fundamental_solve(np.ones(live.sum()))
        return float(1.0 + self.initial[live] @ t)

    @property
    def sd_collapse_time(self) -> float:
        """sd(T) from E[t²] = (I − Q)⁻¹ (1 + 2 Q t) (steps to absorption from each state)."""
        live = ~self.dirac
        if not live.any():
            return 0.0
        q = self.transition[np.ix_(live, live)]
        t = self._fundamental_solve(np.ones(live.sum()))
        t2 = self._fundamental_solve(1.0 + 2.0 * q @ t)
        a = self.initial[live]
        mean = 1.0 + a @ t
        second = 1.0 + 2.0 * (a @ t) + a @ t2
        return float(np.sqrt(max(second - mean * mean, 0.0)))

    def survival(self, n_generations: int) -> np.ndarray:
        """P(T > m) for m = 0 … n_generations by matrix powers (mass on non-Dirac states)."""
        n_generations = check_int(n_generations, "n_generations", low=0,
                                  where="FullySyntheticChain.survival")
        out = np.ones(n_generations + 1)
        live = ~self.dirac
        pi = self.initial[live]
        q = self.transition[np.ix_(live, live)]
        for m in range(1, n_generations + 1):
            out[m] = pi.sum()
            pi = pi @ q
        return out

    def collapse_prob(self, n_generations: int) -> np.ndarray:
        """ρ_m = P(p(m) is a Dirac mass), m = 0 … n_generations (ρ_0 = 1 iff p(0) is Dirac)."""
        n_generations = check_int(n_generations, "n_generations", low=0,
                                  where="FullySyntheticChain.collapse_prob")
        out = np.zeros(n_generations + 1)
        out[0] = float(self.tokens.size == 1)
        pi = self.initial.copy()
        for m in range(1, n_generations + 1):
            out[m] = pi[self.dirac].sum()
            pi = pi @ self.transition
        return out

    def absorption_probabilities(self) -> np.ndarray:
        """P(lim p(m) = δ_i) per vocabulary token i (Proposition 1 says: p_i), shape (vocab,).

        B = (I − Q)⁻¹ R, R = transitions from live to Dirac states.
        """
        live = ~self.dirac
        dirac_idx = np.flatnonzero(self.dirac)
        reach = self.initial[dirac_idx].copy()
        if live.any():
            r = self.transition[np.ix_(live, self.dirac)]
            reach += self.initial[live] @ self._fundamental_solve(r)
        out = np.zeros(self.p0.size)
        # the Dirac state of support token a has all n counts on a
        owner = self.states[dirac_idx].argmax(axis=1)
        out[self.tokens[owner]] = reach
        return out


def fully_synthetic_chain(p0: object, n: int) -> FullySyntheticChain:
    """Build the exact count chain of the fully-synthetic loop for a vector p(0) and n.

    Tokens with p_i = 0 never appear and are left out, so the state space has
    C(n + s̃ − 1, s̃ − 1) states (s̃ = support size); at most ``MAX_COUNT_STATES``.
    """
    p0 = check_probabilities(p0, "p0", where="fully_synthetic_chain")
    if p0.ndim != 1:
        raise ValueError("The 'p0' parameter of fully_synthetic_chain must be a vector (vocab,). "
                         f"Got shape {p0.shape} instead.")
    n = check_int(n, "n", low=1, where="fully_synthetic_chain")
    tokens = np.flatnonzero(p0 > 0)
    s = tokens.size
    size = round(float(np.exp(gammaln(n + s) - gammaln(n + 1) - gammaln(s))))
    if size > MAX_COUNT_STATES:
        raise ValueError(f"The 'n' parameter of fully_synthetic_chain gives {size} states with "
                         f"support {s} (at most {MAX_COUNT_STATES}). Got {n} instead.")
    states = _compositions(n, s)
    probs = states / n
    transition = np.exp(_log_multinomial(states, probs, n))
    transition /= transition.sum(axis=1, keepdims=True)  # rows sum to 1 to rounding
    initial = np.exp(_log_multinomial(states, p0[tokens][None, :], n))[0]
    initial /= initial.sum()
    dirac = states.max(axis=1) == n
    return FullySyntheticChain(n=n, p0=p0, tokens=tokens, states=states, transition=transition,
                               initial=initial, dirac=dirac)


# ---------------------------------------------------------------------------------------------
# Most-recent-K window, s = 2


@dataclass(frozen=True, eq=False)
class WindowChain:
    """Exact collapse and absorption times of the most-recent-K loop for s = 2 (§4.2).

    T: the first generation whose model is a Dirac mass. Absorption time: the first
    generation from which every later model is the same Dirac mass, i.e. the first of K equal
    Dirac models in a row (a window of K equal Dirac models feeds only that Dirac mass).
    """

    n: int
    K: int
    split: str
    p0: np.ndarray
    mean_collapse_time: float
    mean_absorption_time: float
    n_states: int
    _model: _WindowModel = field(repr=False)

    def survival(self, n_generations: int) -> tuple[np.ndarray, np.ndarray]:
        """(P(T > m), P(absorption > m)) for m = 0 … n_generations, by forward propagation."""
        n_generations = check_int(n_generations, "n_generations", low=0,
                                  where="WindowChain.survival")
        out = self._model.forward(n_generations)
        return out["collapse"], out["absorption"]

    def sigma_mean(self, n_generations: int) -> np.ndarray:
        """S_m = E‖p(m)‖₂² for m = 0 … n_generations, by forward propagation."""
        n_generations = check_int(n_generations, "n_generations", low=0,
                                  where="WindowChain.sigma_mean")
        return self._model.forward(n_generations)["sigma"]


class _WindowModel:
    """The window chain itself: states are tuples (x_t) of first-token counts of the stored
    models max(1, j−K+1) … j after generation j; model m's totals n^(m) and the counts
    n_t^(m) it takes from each earlier model come from ``MostRecent.counts``."""

    def __init__(self, p_first: float, scenario: MostRecent):
        self.p = p_first
        self.scenario = scenario
        self.K = scenario.K
        self._counts: dict[int, np.ndarray] = {}
        self._binomials: dict[tuple[int, float], np.ndarray] = {}
        # generation after which the chain is time-homogeneous: every stored model (and the
        # next one) has the long-run total and p(0) is out of reach
        self.late_total = self.total(2 * self.K + 1)
        first_late = next(t for t in range(1, 2 * self.K + 2)
                          if self.total(t) == self.late_total)
        self.homogeneous_from = max(self.K, first_late + self.K - 1)

    def counts(self, m: int) -> np.ndarray:
        if m not in self._counts:
            self._counts[m] = self.scenario.counts(m)
        return self._counts[m]

    def total(self, m: int) -> int:
        return int(self.counts(m).sum())

    def binomial(self, c: int, q: float) -> np.ndarray:
        key = (c, q)
        if key not in self._binomials:
            self._binomials[key] = binom.pmf(np.arange(c + 1), c, q)
        return self._binomials[key]

    def next_law(self, window: tuple[int, ...], j: int) -> np.ndarray:
        """Law of x_{j+1} (first-token count of model j+1) given the stored window after j:
        the sum of independent Binomial(n_t^(j+1), p_t) draws from the models t in reach."""
        m = j + 1
        counts = self.counts(m)
        first = m - len(window)  # generation of window[0]
        law = np.ones(1)
        for t in np.flatnonzero(counts):
            q = self.p if t == 0 else window[t - first] / self.total(int(t))
            law = np.convolve(law, self.binomial(int(counts[t]), q))
        return law

    def is_dirac(self, x: int, m: int) -> bool:
        return x == 0 or x == self.total(m)

    def absorbed(self, window: tuple[int, ...], j: int) -> bool:
        if len(window) < self.K or j < self.K:
            return False
        first = j - len(window) + 1
        return all(x == 0 for x in window) or all(
            x == self.total(first + i) for i, x in enumerate(window))

    def step(self, law: dict, j: int) -> dict:
        """Propagate {(window, collapsed): prob} from generation j to j+1."""
        out: dict = {}
        for (window, collapsed), prob in law.items():
            nxt = self.next_law(window, j)
            base = window[1:] if len(window) == self.K else window
            for x in np.flatnonzero(nxt):
                key = ((*base, int(x)), collapsed or self.is_dirac(int(x), j + 1))
                out[key] = out.get(key, 0.0) + prob * nxt[x]
        return out

    def transient(self, until: int) -> list[dict]:
        """Laws after generations 0 … until (generation 0: the empty window)."""
        laws = [{((), False): 1.0}]
        for j in range(until):
            laws.append(self.step(laws[-1], j))
        return laws

    # -- the homogeneous part, as a sparse matrix ---------------------------------------------
    def homogeneous(self) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, dict]:
        """Transition matrix over all K-tuples, newest-is-Dirac mask, absorbed mask, index."""
        top = self.late_total
        states = list(itertools.product(range(top + 1), repeat=self.K))
        index = {s: i for i, s in enumerate(states)}
        j = self.homogeneous_from
        rows, cols, vals = [], [], []
        for i, window in enumerate(states):
            nxt = self.next_law(window, j)
            for x in np.flatnonzero(nxt):
                rows.append(i)
                cols.append(index[(*window[1:], int(x))])
                vals.append(nxt[x])
        size = len(states)
        matrix = sp.csr_matrix((vals, (rows, cols)), shape=(size, size))
        newest = np.array([s[-1] in (0, top) for s in states])
        absorbed = np.array([all(x == 0 for x in s) or all(x == top for x in s) for s in states])
        return matrix, newest, absorbed, index

    def forward(self, n_generations: int) -> dict[str, np.ndarray]:
        """Exact laws by forward propagation, m = 0 … n_generations: ``collapse`` P(T > m),
        ``absorption`` P(absorption > m), ``sigma`` E‖p(m)‖₂². The absorption time is τ − K + 1
        with τ the generation completing K equal Dirac models in a row, so
        P(absorption > m) = P(τ > m + K − 1)."""
        end = n_generations + self.K - 1
        j0 = min(self.homogeneous_from, end)
        laws = self.transient(j0)
        surv_t = np.ones(end + 1)
        surv_tau = np.ones(end + 1)
        sigma = np.zeros(end + 1)
        sigma[0] = self.p**2 + (1 - self.p) ** 2
        for j, law in enumerate(laws):
            surv_t[j] = sum(v for (_, c), v in law.items() if not c)
            surv_tau[j] = sum(v for (w, _), v in law.items() if not self.absorbed(w, j))
            if j:
                sigma[j] = sum(v * _sigma2(w[-1], self.total(j)) for (w, _), v in law.items())
        if end > j0:
            matrix, newest, absorbed, index = self.homogeneous()
            states = np.array(list(index), dtype=np.float64).reshape(len(index), self.K)
            state_sigma = _sigma2(states[:, -1], self.late_total)
            alive = np.zeros(matrix.shape[0])   # mass that has not collapsed yet (T)
            every = np.zeros(matrix.shape[0])   # all mass (τ, σ)
            for (window, collapsed), v in laws[-1].items():
                every[index[window]] += v
                if not collapsed:
                    alive[index[window]] += v
            forward = matrix.T.tocsr()
            for j in range(j0 + 1, end + 1):
                alive = forward @ alive
                alive[newest] = 0.0
                every = forward @ every
                surv_t[j] = alive.sum()
                surv_tau[j] = every[~absorbed].sum()
                sigma[j] = every @ state_sigma
        last = n_generations + 1
        return {"collapse": surv_t[:last], "absorption": surv_tau[self.K - 1 :],
                "sigma": sigma[:last]}


def _sigma2(x: np.ndarray | int, total: int) -> np.ndarray | float:
    """‖p‖₂² of a two-token model with counts (x, total − x)."""
    q = np.asarray(x, dtype=np.float64) / total
    return q * q + (1.0 - q) ** 2


def window_chain(p0: object, n: int, K: int, *, split: str = "even") -> WindowChain:
    """Exact E[T] and E[absorption time] of the most-recent-K loop (§4.2) for s = 2.

    ``p0``: a probability vector with at most two positive entries. ``split``: "even" (n
    samples split over the k = min(m, K) models in reach, remainder one each to the most
    recent) or "literal" (⌊n/K⌋ from each), as in :class:`~modelcollapse.scenarios.MostRecent`.
    The first generations (where p(0) is still in reach) are propagated exactly; from then on
    the chain is time-homogeneous on the counts of the last K models, (n+1)^K states, and

        g = (I − Q_T)⁻¹ 1     (Q_T: transitions into states whose newest model is not Dirac)
        h = (I − Q_A)⁻¹ 1     (Q_A: transitions among not-yet-absorbed states)

    give E[T] = Σ_{j<J} P(T > j) + E[g(X_J); T > J] and E[τ] likewise, τ the generation at
    which K equal Dirac models in a row are complete; the absorption time is τ − K + 1.
    """
    p0 = check_probabilities(p0, "p0", where="window_chain")
    if p0.ndim != 1 or np.count_nonzero(p0) > 2:
        raise ValueError("The 'p0' parameter of window_chain must be a vector with at most two "
                         f"positive entries (s = 2). Got shape {p0.shape} with "
                         f"{np.count_nonzero(p0)} positive entries instead.")
    scenario = MostRecent(n=n, K=K, split=split)
    n, K = scenario.n, scenario.K
    support = np.flatnonzero(p0 > 0)
    if support.size == 1:  # p(1) is a Dirac mass, and every later model the same one
        model = _WindowModel(1.0, scenario)
        return WindowChain(n=n, K=K, split=split, p0=p0, mean_collapse_time=1.0,
                           mean_absorption_time=1.0, n_states=1, _model=model)
    model = _WindowModel(float(p0[support[0]]), scenario)
    size = (model.late_total + 1) ** K
    if size > MAX_WINDOW_STATES:
        raise ValueError(f"The window chain for n={n}, K={K} has {size} states (at most "
                         f"{MAX_WINDOW_STATES}). Choose a smaller n or K.")
    j0 = model.homogeneous_from
    laws = model.transient(j0)
    before_t = sum(sum(v for (_, c), v in law.items() if not c) for law in laws[:-1])
    before_tau = sum(sum(v for (w, _), v in law.items() if not model.absorbed(w, j))
                     for j, law in enumerate(laws[:-1]))
    matrix, newest, absorbed, index = model.homogeneous()
    eye = sp.identity(matrix.shape[0], format="csc")
    into_live = matrix @ sp.diags((~newest).astype(float))
    g = np.atleast_1d(spsolve((eye - into_live).tocsc(), np.ones(matrix.shape[0])))
    live = np.flatnonzero(~absorbed)
    h = np.zeros(matrix.shape[0])
    if live.size:
        q = matrix[live][:, live]
        h[live] = spsolve((sp.identity(live.size, format="csc") - q).tocsc(),
                          np.ones(live.size))
    after_t = sum(v * g[index[w]] for (w, c), v in laws[-1].items() if not c)
    after_tau = sum(v * h[index[w]] for (w, _), v in laws[-1].items())
    mean_t = before_t + after_t
    mean_tau = before_tau + after_tau
    return WindowChain(n=n, K=K, split=split, p0=p0, mean_collapse_time=float(mean_t),
                       mean_absorption_time=float(mean_tau - K + 1), n_states=size,
                       _model=model)
