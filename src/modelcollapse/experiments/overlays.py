"""Theory set beside each figure cell, named as figure specs name it (``theory = [...]``).

Only calls into :mod:`modelcollapse.theory`; no formula is restated here.

* ``eq6``: S_m = E σ_m of the fully synthetic loop (Theorem 1, eq. 6), averaged over contexts.
* ``eq8``: the bounds of eq. 8 on E[T] (Theorem 1).
* ``exact_T``: the exact law of T from the genealogy of the samples
  (:func:`~modelcollapse.theory.collapse_time_law`): E[T], sd(T), P(T = m), ρ_m.
* ``diffusion_T``: E[T] from the Wright–Fisher diffusion (Littler 1975) and its finite-n
  correction (:func:`~modelcollapse.theory.collapse_time_prediction`).
* ``eq9``: S_m of the partially synthetic loop (Theorem 2, eq. 9).
* ``l1_partial``: the exact E‖p(m) − p(1)‖₁ of the partially synthetic loop for every
  generation m ≥ 1 (:func:`~modelcollapse.theory.expected_l1_to_first`), averaged over
  contexts; NaN at m = 0, where the metric holds another quantity.
* ``moments``: exact S_m of any fresh-draw scenario (windows, random pool; §4.2) from the
  second-moment recursion (:func:`~modelcollapse.theory.expected_sigma`).
* ``absorption``: the approximate absorption time of the most-recent-K window
  (:func:`~modelcollapse.theory.most_recent_collapse_prediction`; K = 1: E[T]).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..scenarios import FullySynthetic, MostRecent
from ..spec import SimulationSpec
from ..theory import (
    collapse_time_bounds,
    collapse_time_law,
    collapse_time_prediction,
    expected_l1_to_first,
    expected_sigma,
    most_recent_collapse_prediction,
)

__all__ = ["THEORIES", "CellTheory", "cell_theory", "collapse_time_curves"]


@dataclass
class CellTheory:
    """Scalars (names of the report's quantities) and curves over generations m = 0 … G."""

    numbers: dict[str, float] = field(default_factory=dict)
    curves: dict[str, np.ndarray] = field(default_factory=dict)


def _rows(p0: np.ndarray) -> np.ndarray:
    p0 = np.asarray(p0, dtype=np.float64)
    return p0[None, :] if p0.ndim == 1 else p0


def _eq6(p0, spec, generations, snapshots, out: CellTheory) -> None:
    curve = np.mean(expected_sigma(_rows(p0), scenario=FullySynthetic(n=spec.n), m=generations),
                    axis=0)
    out.curves["S_eq6"] = curve
    out.numbers["S_eq6_final"] = float(curve[-1])
    for m in snapshots:
        out.numbers[f"S_eq6@{m}"] = float(curve[m])


def _eq8(p0, spec, generations, snapshots, out: CellTheory) -> None:
    rows = _rows(p0)
    bounds = np.array([collapse_time_bounds(r, n=spec.n) for r in rows])       # (contexts, 2)
    out.numbers["T_lower_eq8"], out.numbers["T_upper_eq8"] = bounds.mean(axis=0).tolist()


def _exact_T(p0, spec, generations, snapshots, out: CellTheory) -> None:
    rows = _rows(p0)
    law = collapse_time_law(rows, n=spec.n, max_generations=int(generations[-1]))
    out.numbers["T_exact"] = float(np.mean(law.mean))
    out.numbers["T_exact_sd"] = float(np.mean(law.sd)) if rows.shape[0] == 1 else None
    dirac = law.collapse_prob.mean(axis=0)                                     # (G+1,)
    out.curves["dirac_fraction_exact"] = dirac
    if rows.shape[0] == 1:
        out.curves["T_pmf_exact"] = law.pmf[0]
    for m in snapshots:
        out.numbers[f"dirac_fraction_exact@{m}"] = float(dirac[m])


def _diffusion_T(p0, spec, generations, snapshots, out: CellTheory) -> None:
    rows = _rows(p0)
    out.numbers["T_diffusion"] = float(np.mean(collapse_time_prediction(rows, n=spec.n,
                                                                        method="littler")))
    out.numbers["T_diffusion_corrected"] = float(np.mean(collapse_time_prediction(rows, n=spec.n)))


def _eq9(p0, spec, generations, snapshots, out: CellTheory) -> None:
    curve = np.mean(expected_sigma(_rows(p0), scenario=spec.build_scenario(), m=generations),
                    axis=0)
    out.curves["S_eq9"] = curve
    out.numbers["S_eq9_final"] = float(curve[-1])


def _l1_partial(p0, spec, generations, snapshots, out: CellTheory) -> None:
    curve = np.full(generations.size, np.nan)
    rows = _rows(p0)
    for m in generations[generations >= 1]:
        curve[m] = np.mean([expected_l1_to_first(row, n=spec.n, N=spec.N, m=int(m)).value
                            for row in rows])
    out.curves["l1_exact"] = curve
    out.numbers["l1_first_exact_final"] = float(curve[-1])


def _moments(p0, spec, generations, snapshots, out: CellTheory) -> None:
    curve = np.mean(expected_sigma(_rows(p0), scenario=spec.build_scenario(), m=generations),
                    axis=0)
    out.curves["S_exact"] = curve
    out.numbers["S_exact_final"] = float(curve[-1])
    # The same window as the measured plateau: generations G//2 … G.
    out.numbers["S_exact_plateau"] = float(curve[int(generations[-1]) // 2:].mean())


def _absorption(p0, spec, generations, snapshots, out: CellTheory) -> None:
    scenario = spec.build_scenario()
    row = _rows(p0)[0]
    if isinstance(scenario, FullySynthetic):
        out.numbers["absorption_predicted"] = float(collapse_time_prediction(row, n=spec.n))
    elif isinstance(scenario, MostRecent) and scenario.split == "even":
        out.numbers["absorption_predicted"] = most_recent_collapse_prediction(row, n=spec.n,
                                                                              K=scenario.K)


#: Theory name (as figure specs write it) -> what computes it.
THEORIES: dict[str, Callable] = {"eq6": _eq6, "eq8": _eq8, "exact_T": _exact_T,
                                 "diffusion_T": _diffusion_T, "eq9": _eq9,
                                 "l1_partial": _l1_partial, "moments": _moments,
                                 "absorption": _absorption}


def cell_theory(names: Sequence[str], p0: np.ndarray, spec: SimulationSpec, *,
                snapshots: Sequence[int] = ()) -> CellTheory:
    """The theory ``names`` for one cell: ``p0`` is (vocab,) or (contexts, vocab)."""
    out = CellTheory()
    generations = np.arange(spec.generations + 1)
    for name in names:
        THEORIES[name](p0, spec, generations, snapshots, out)
    return out


def collapse_time_curves(p0: np.ndarray, n_values: Sequence[int]) -> dict[str, np.ndarray]:
    """E[T] over a grid of n for one p(0) (vocab,): exact, eq. 8 lower bound, diffusion.

    Used by Fig. 2 to draw the theory as curves between the simulated n.
    """
    p0 = np.asarray(p0, dtype=np.float64)
    n_values = np.asarray(n_values)
    return {
        "n": n_values,
        "T_exact": np.array([collapse_time_law(p0, n=int(n)).mean for n in n_values]),
        "T_lower_eq8": np.array([collapse_time_bounds(p0, n=int(n))[0] for n in n_values]),
        "T_diffusion": np.array([collapse_time_prediction(p0, n=int(n), method="littler")
                                 for n in n_values]),
    }
