"""S_m = E‖p(m)‖₂² and E‖p(m) − p(1)‖₂² for every scenario the theory covers: one door each.

Each scenario gets the exact form that belongs to it, so that these functions give the same
numbers as the formulas they call:

* fully synthetic (§2.2): eq. 6 of Theorem 1 (``paper.expected_sigma_fully``), and the
  fresh-draw recursion of ``mixed.second_moments`` for E‖p(m) − p(1)‖₂²;
* partially synthetic (§2.2, §3.2): eq. 9 of Theorem 2 with its sign corrected
  (``paper.expected_sigma_partial``), and E‖p(m) − p(1)‖₂² = S_m − S_1 (appendix B.3,
  ``partial.expected_l2sq_deviation``), with the limit m → ∞ (``m=None``);
* most-recent-K, fresh-real, custom with fresh real data and the random pool (§4.2): the
  exact second-moment recursion of ``mixed.second_moments``.

``lineage_pairs._sigma_by_descent`` derives S_m independently (pairs of lineages); the tests
hold these functions to it.
"""

from __future__ import annotations

import numpy as np

from ..scenarios import FullySynthetic, PartiallySynthetic, Scenario
from .mixed import _cross_moments
from .paper import _generations, _rows, expected_sigma_fully, expected_sigma_partial
from .partial import expected_l2sq_deviation

__all__ = ["expected_l2sq_to_first", "expected_sigma"]


def _check_scenario(scenario: object, where: str) -> Scenario:
    if not isinstance(scenario, Scenario):
        raise TypeError(f"The 'scenario' parameter of {where} must be a Scenario "
                        f"(modelcollapse.scenarios, e.g. SimulationSpec.build_scenario()). "
                        f"Got {scenario!r} instead.")
    return scenario


def _series(single: bool, values: list[np.ndarray]) -> np.ndarray:
    out = np.stack([np.asarray(v, dtype=np.float64) for v in values])
    return out[0] if single else out


def expected_sigma(p0: object, *, scenario: Scenario, m: int | np.ndarray) -> np.ndarray:
    """S_m = E‖p(m)‖₂² (the mean of the loop's metric ``sigma``), exactly.

    Fully synthetic: Theorem 1, eq. 6, S_m = 1 − (1 − 1/n)^m (1 − S0). Partially synthetic:
    Theorem 2, eq. 9 (the sign of its last transient term corrected, docs/theory.md).
    Most-recent-K (either split), fresh-real, custom with fresh real data and the random
    pool (§4.2): the exact second-moment recursion (``mixed.second_moments``).

    ``p0`` is (vocab,) or (contexts, vocab); only S0 = Σ p_i² of each row enters.
    ``scenario`` is the simulator's scenario object (eq. 5), e.g. ``FullySynthetic(n=10)`` or
    ``spec.build_scenario()``. ``m`` is a generation (int ≥ 0) or an int array of them; the
    result has the shape of ``m``, with a leading contexts axis for a matrix ``p0``.
    """
    where = "theory.expected_sigma"
    rows, single = _rows(p0, where)
    scenario = _check_scenario(scenario, where)
    gens = _generations(m, "expected_sigma")
    s0 = np.sum(rows * rows, axis=1)
    if isinstance(scenario, FullySynthetic):
        values = [expected_sigma_fully(float(s), scenario.n, gens) for s in s0]
    elif isinstance(scenario, PartiallySynthetic):
        values = [expected_sigma_partial(float(s), scenario.n, scenario.N, gens) for s in s0]
    else:
        diag, _ = _cross_moments(scenario, max(int(gens.max()), 1), where)
        values = [(diag @ np.array([1.0, float(s)]))[gens] for s in s0]
    return _series(single, values)


def expected_l2sq_to_first(p0: object, *, scenario: Scenario,
                           m: int | np.ndarray | None) -> np.ndarray:
    """E‖p(m) − p(1)‖₂², exactly: the squared L2 counterpart of the metric ``l1_to_first``.

    Partially synthetic: S_m − S_1 with S_m of Theorem 2, eq. 9 (p(m) is a martingale around
    p(1); appendix B.3's recursion), and ``m=None`` for the limit m → ∞. Fully synthetic,
    most-recent-K, fresh-real, custom with fresh real data and the random pool (§4.2): the
    exact second-moment recursion (``mixed.second_moments``).

    ``p0`` is (vocab,) or (contexts, vocab) (only S0 = Σ p_i² enters); ``scenario`` as in
    :func:`expected_sigma`; ``m`` an int ≥ 0 or an int array, NaN at m = 0 as for the metric
    (p(1) does not exist yet). The result has the shape of ``m``, with a leading contexts
    axis for a matrix ``p0``.
    """
    where = "theory.expected_l2sq_to_first"
    rows, single = _rows(p0, where)
    scenario = _check_scenario(scenario, where)
    s0 = np.sum(rows * rows, axis=1)
    if isinstance(scenario, PartiallySynthetic):
        if m is None:
            values = [expected_l2sq_deviation(float(s), scenario.n, scenario.N, None)
                      for s in s0]
            return _series(single, values)
        gens = _generations(m, "expected_l2sq_to_first")
        later = np.maximum(gens, 1)
        values = [np.where(gens == 0, np.nan,
                           expected_l2sq_deviation(float(s), scenario.n, scenario.N, later))
                  for s in s0]
        return _series(single, values)
    if m is None:
        raise ValueError(f"The 'm' parameter of {where} can be None (m → ∞) only for the "
                         f"partially synthetic loop. Got None for {scenario.name!r} instead.")
    gens = _generations(m, "expected_l2sq_to_first")
    diag, first = _cross_moments(scenario, max(int(gens.max()), 1), where)
    token = diag - 2 * first + diag[1]
    values = []
    for s in s0:
        to_first = token @ np.array([1.0, float(s)])
        to_first[0] = np.nan
        values.append(to_first[gens])
    return _series(single, values)
