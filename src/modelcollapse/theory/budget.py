"""How much synthetic data can a partially synthetic loop afford?

The largest n (synthetic samples per generation, next to a fixed real corpus of N samples)
that keeps E‖p(m) − p(1)‖₁ ≤ ε, three ways side by side:

* ``eq11``: the paper's closed form (eq. 11), distribution-free and very conservative;
* ``theorem3``: the largest n whose Theorem 3 bound is ≤ ε (a bisection on the bound);
* ``prediction``: the largest n such that the predicted E‖p(m) − p(1)‖₁
  (``theory.expected_l1_to_first``, exact to 0.05 %) is ≤ ε for every n' ≤ n, for
  the given p(0) and generation m. m = None means every generation, i.e. the limit m → ∞
  (the deviation grows with m). In that limit the deviation also grows with n, towards its
  n → ∞ value Σ_c w_c E|Beta(2c, 2(N − c)) − c/N| (the Wright–Fisher diffusion pulled back
  to p(1)); when even that is ≤ ε, every n is safe and the budget is unlimited (``None``).
  For a fixed m the deviation rises and falls again with n (with n → ∞ the synthetic data
  reproduce p(m−1) exactly); the budget is then the start of the unsafe range.
* ``simulation``: the loop run at the predicted n and at n + 1, mean ± standard error of
  ‖p(m) − p(1)‖₁, with z = (mean − ε)/se for each.

Public (re-exported by :mod:`modelcollapse.theory`): ``synthetic_budget``. Building blocks,
importable from here: ``largest_safe_n`` (the prediction), ``unlimited_deviation``,
``simulation_generations``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from .._validation import check_float, check_int, check_probabilities
from ..rng import SeedLike
from .paper import largest_safe_n_eq11, largest_safe_n_theorem3
from .partial import (
    _l1_from_weights,
    beta_mean_abs_deviation,
    corpus_count_weights,
    expected_l1_to_first,
)

__all__ = ["BudgetResult", "SimulatedDeviation", "largest_safe_n", "simulation_generations",
           "synthetic_budget", "unlimited_deviation"]

#: Largest n the search for the predicted budget considers.
N_SEARCH_MAX = 10**8
#: Generations simulated for m = None: until c_m is within this fraction of its limit, and at
#: most SIMULATION_GENERATIONS_MAX.
LIMIT_FRACTION = 1e-3
SIMULATION_GENERATIONS_MAX = 500
#: What the answer is about: one next-token distribution p(0).
SCOPE = ("single context (unigram): p(0) is one next-token distribution; a language model "
         "has its own p(0) in every context, so take the budget per context, with that "
         "context's p(0) and its own number N of real samples")
#: How to read ε.
EPSILON_MEANING = ("E‖p(m) − p(1)‖₁ ≤ ε bounds the expected total variation distance between "
                   "model m and model 1 by ε/2: no set of tokens changes its probability by "
                   "more than ε/2 on average")


@dataclass(frozen=True)
class SimulatedDeviation:
    """Simulated ‖p(m) − p(1)‖₁ at generation m for one n: mean, se, z = (mean − ε)/se, and
    the prediction ``expected_l1_to_first`` at that same generation with
    z_prediction = (mean − predicted)/se."""

    n: int
    generation: int
    n_runs: int
    mean: float
    se: float
    z: float
    predicted: float
    z_prediction: float


@dataclass(frozen=True)
class BudgetResult:
    """The answers of ``synthetic_budget`` (see the module doc)."""

    vocab: int
    N: int
    epsilon: float
    generations: int | None
    n_eq11: int
    n_theorem3: int
    n_prediction: int | None
    prediction_at_n: float
    prediction_at_next: float | None
    prediction_method: str
    simulation: tuple[SimulatedDeviation, ...] = ()

    @property
    def synthetic_share(self) -> float | None:
        """n/(N + n) at the predicted budget: the synthetic share of each training set."""
        if self.n_prediction is None:
            return None
        return self.n_prediction / (self.N + self.n_prediction)

    @property
    def simulated_generation(self) -> int | None:
        """The generation the simulation measured (None without simulation)."""
        return self.simulation[0].generation if self.simulation else None

    @property
    def simulated_generation_reason(self) -> str | None:
        """Why that generation: m itself, or the horizon standing in for m → ∞."""
        if not self.simulation:
            return None
        if self.generations is not None:
            return "the generation m asked for"
        return (f"m → ∞ stands in as the first generation where the deviation's variance "
                f"factor c_m is within {LIMIT_FRACTION:.1%} of its limit")

    @property
    def consistent(self) -> bool | None:
        """Simulation agrees with the prediction the budget rests on: at n and n + 1, the
        simulated mean is within 3 se of ``expected_l1_to_first`` at the simulated generation.
        (Not against ε itself: for m → ∞ the simulated generation stands in for the limit,
        and its small gap to the limit can exceed the se of many runs.) None without
        simulation."""
        if not self.simulation or self.n_prediction is None:
            return None
        return bool(all(abs(s.z_prediction) < 3 for s in self.simulation))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["simulation"] = [asdict(s) for s in self.simulation]
        out["consistent"] = self.consistent
        out["synthetic_share"] = self.synthetic_share
        out["simulated_generation"] = self.simulated_generation
        out["simulated_generation_reason"] = self.simulated_generation_reason
        out["scope"] = SCOPE
        out["epsilon_meaning"] = EPSILON_MEANING
        return out


def _predictor(p0: np.ndarray, N: int, generations: int | None,
               weights: np.ndarray | None = None) -> Callable[[int], tuple[float, str]]:
    """n ↦ (predicted E‖p(m) − p(1)‖₁, method), by ``expected_l1_to_first``'s "auto" route,
    on one corpus-count table built once and with every value kept: the search asks for
    ~40 n and then again for its answer and n + 1."""
    if weights is None:
        weights = corpus_count_weights(p0, N)
    seen: dict[int, tuple[float, str]] = {}

    def predicted(n: int) -> tuple[float, str]:
        if n == 0:
            return 0.0, "exact"
        if n not in seen:
            dev = _l1_from_weights(weights, n=n, N=N, m=generations, method="auto")
            seen[n] = (dev.value, dev.method)
        return seen[n]

    return predicted


def unlimited_deviation(p0: np.ndarray, N: int, weights: np.ndarray | None = None) -> float:
    """lim_{n→∞} lim_{m→∞} E‖p(m) − p(1)‖₁ = Σ_c w_c E|Beta(2c, 2(N − c)) − c/N|: the largest
    deviation any amount of synthetic data can cause next to a corpus of N real samples.
    ``weights``: the table ``corpus_count_weights(p0, N)`` if the caller has it."""
    p = check_probabilities(p0, "p0", where="theory.unlimited_deviation")
    N = check_int(N, "N", low=1, where="theory.unlimited_deviation")
    if weights is None:
        weights = corpus_count_weights(p, N)
    c = np.arange(1, N)
    if c.size == 0:
        return 0.0
    return float(np.sum(weights[1:N] * beta_mean_abs_deviation(c, N, 1.0 / (2 * N + 1))))


def largest_safe_n(p0: np.ndarray, N: int, epsilon: float, generations: int | None = None,
                   *, report: Callable[[str], None] | None = None,
                   ) -> tuple[int | None, float, float | None, str]:
    """Largest n such that the predicted E‖p(m) − p(1)‖₁ ≤ ε for all n' ≤ n (0 if none;
    None if every n is safe, m = None only), by doubling then bisection. ``report``: called
    with one line per stage (progress).

    Returns (n, prediction at n, prediction at n + 1, method used at n).
    """
    say = report or (lambda line: None)
    say(f"corpus-count table: {N + 1:,} counts over {np.count_nonzero(p0):,} tokens")
    weights = corpus_count_weights(p0, N)
    if generations is None:
        limit = unlimited_deviation(p0, N, weights)
        if limit <= epsilon:
            return None, limit, None, "beta (n → ∞ limit)"
    predict = _predictor(p0, N, generations, weights)
    say("searching n: doubling, then interpolation in the bracket")
    lo, hi = 0, 1
    value_lo, value_hi = 0.0, predict(1)[0]
    while value_hi <= epsilon and hi < N_SEARCH_MAX:
        lo, value_lo = hi, value_hi
        hi = min(hi * 2, N_SEARCH_MAX)
        value_hi = predict(hi)[0]
    # The bracket value(lo) ≤ ε < value(hi) shrinks to adjacent integers, so the answer is
    # bisection's; an interpolated step (the prediction is smooth in n) takes each point, and
    # a halving follows any step that kept the same end (the Illinois safeguard).
    last, halve = None, False
    while hi - lo > 1:
        if not halve and value_hi > value_lo:
            guess = lo + (epsilon - value_lo) / (value_hi - value_lo) * (hi - lo)
            mid = min(max(round(guess), lo + 1), hi - 1)
        else:
            mid = (lo + hi) // 2
        value = predict(mid)[0]
        side = value <= epsilon
        halve = side == last and not halve
        last = side
        if side:
            lo, value_lo = mid, value
        else:
            hi, value_hi = mid, value
    at_n, method = predict(lo)
    at_next, _ = predict(lo + 1)
    return lo, at_n, at_next, method


def simulation_generations(n: int, N: int, generations: int | None) -> int:
    """The generation to simulate: m itself, or for m = None the first m at which the
    conditional variance factor c_m is within 0.1 % of its limit (at least 2, at most 500)."""
    if generations is not None:
        return generations
    alpha = n / (N + n)
    r = alpha * alpha * (1 - 1 / n)
    if r <= 0:
        return 2
    m = 1 + math.ceil(math.log(LIMIT_FRACTION) / math.log(r))
    return int(min(max(m, 2), SIMULATION_GENERATIONS_MAX))


def _simulate(p0: np.ndarray, n: int, N: int, m: int, epsilon: float, n_runs: int,
              seed: SeedLike, threads: int | None = None) -> SimulatedDeviation:
    from ..api import simulate  # the engine is heavy to import; only simulation needs it
    from ..scenarios import PartiallySynthetic

    res = simulate(p0=p0, scenario=PartiallySynthetic(n=n, N=N), runs=n_runs, generations=m,
                   seed=seed, metrics=("l1_to_first",), progress=False, trajectories="none",
                   threads=threads)
    means, ses = res.mean("l1_to_first")  # over the runs, per generation
    mean, se = float(means[m]), float(ses[m])
    predicted = expected_l1_to_first(p0, n=n, N=N, m=m).value
    return SimulatedDeviation(n, m, n_runs, mean, se, _z(mean, epsilon, se), predicted,
                              _z(mean, predicted, se))


def _z(mean: float, reference: float, se: float) -> float:
    if se > 0:
        return (mean - reference) / se
    return 0.0 if mean == reference else math.copysign(math.inf, mean - reference)


def _check_simulation_fits(p0: np.ndarray, N: int, generations: int | None,
                           n_runs: int) -> None:
    """Refuse, before the search, simulations the machine cannot hold (sized at n = 1 and
    the longest horizon; the n found is sized again when it is simulated)."""
    from ..engine.footprint import check_plan_fits
    from ..engine.plan import make_plan
    from ..scenarios import PartiallySynthetic

    scenario = PartiallySynthetic(n=1, N=N)
    plan = make_plan(p0[None, :], scenario, n_runs=n_runs,
                     n_generations=generations or SIMULATION_GENERATIONS_MAX, seed=0,
                     metrics=("l1_to_first",), trajectories="none")
    check_plan_fits(plan, scenario, p0.size, where="budget's simulation")


def synthetic_budget(p0: object, *, N: int, epsilon: float, m: int | None = None,
                     simulate: bool = True, n_runs: int = 100,
                     seed: SeedLike = 0, progress: bool | None = False) -> BudgetResult:
    """The largest synthetic n per generation next to a real corpus of N samples that keeps
    E‖p(m) − p(1)‖₁ ≤ ε in the partially synthetic loop: by eq. 11, by inverting Theorem 3,
    and by the prediction ``expected_l1_to_first`` (module doc), optionally simulated.

    ``p0`` (vocab,) is the real distribution; the vocabulary size s of eq. 11 and Theorem 3
    is ``len(p0)``. ``m``: the generation (≥ 2) at which E‖p(m) − p(1)‖₁ must stay below ε
    (None: all generations; the result's field ``generations``). ``simulate``: also run the
    loop at n and n + 1 with ``n_runs`` runs each (side by side on two cores).
    ``progress``: one line per stage on stderr (None: when stderr is a terminal).
    """
    where = "theory.synthetic_budget"
    p = check_probabilities(p0, "p0", where=where)
    if p.ndim != 1:
        raise ValueError(f"The 'p0' parameter of {where} must be one distribution (vocab,). "
                         f"Got shape {p.shape} instead.")
    N = check_int(N, "N", low=1, where=where)
    epsilon = check_float(epsilon, "epsilon", low=0.0, low_open=True, where=where)
    generations = None if m is None else check_int(m, "m", low=2, where=where)
    n_runs = check_int(n_runs, "n_runs", low=2, where=where)
    s = max(p.size, 2)
    say = _reporter(progress)
    if simulate:
        _check_simulation_fits(p, N, generations, n_runs)
    n_pred, at_n, at_next, method = largest_safe_n(p, N, epsilon, generations, report=say)
    sims: tuple[SimulatedDeviation, ...] = ()
    if simulate and n_pred is not None:
        # The same seed at n and n + 1 (common random numbers sharpen their comparison).
        ns = [n for n in (n_pred, n_pred + 1) if n >= 1]
        at = simulation_generations(n_pred, N, generations)
        say(f"simulating n = {', '.join(map(str, ns))} to generation {at}: "
            f"{n_runs} runs each")
        sims = _simulate_side_by_side(p, ns, N, generations, epsilon, n_runs, seed)
    return BudgetResult(vocab=p.size, N=N, epsilon=epsilon, generations=generations,
                        n_eq11=largest_safe_n_eq11(s, N, epsilon),
                        n_theorem3=largest_safe_n_theorem3(s, N, epsilon),
                        n_prediction=n_pred, prediction_at_n=at_n, prediction_at_next=at_next,
                        prediction_method=method, simulation=sims)


def _reporter(progress: bool | None) -> Callable[[str], None]:
    """One line per stage on stderr: with ``progress`` True, or None and stderr a terminal."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return lambda line: None
    return lambda line: print(f"budget: {line}", file=sys.stderr, flush=True)


def _simulate_side_by_side(p: np.ndarray, ns: list[int], N: int, generations: int | None,
                           epsilon: float, n_runs: int, seed: SeedLike,
                           ) -> tuple[SimulatedDeviation, ...]:
    """The simulations at n and n + 1, in two threads where there are two cores (the compiled
    samplers release the GIL; each simulation draws from its own seeded streams, so the
    numbers are those of running them one after the other)."""
    from .._system import available_cores

    cores = available_cores()
    workers = min(len(ns), cores)
    threads = max(1, cores // max(workers, 1))

    def one(n: int) -> SimulatedDeviation:
        at = simulation_generations(n, N, generations)
        return _simulate(p, n, N, at, epsilon, n_runs, seed, threads=threads)

    if workers <= 1:
        return tuple(one(n) for n in ns)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return tuple(pool.map(one, ns))
