"""Exact predictions of the fully synthetic fixed-contexts loop, context by context.

Context j is the fully synthetic statistical loop with n = S_j samples per generation
(paper §2.2) on p(0)_j, so the ancestral-lineage facts of
:mod:`modelcollapse.theory.genealogy` hold per context: with A_m the number of distinct
generation-1 ancestors of generation m's S_j samples (law: ``lineage_pmf``),

* P(p(m)_j is a Dirac mass) = E[Σ_i p_i^{A_m}]                       (eq. 7, ρ_m)
* P(token i is still in p(m)_j) = 1 − E[(1 − p_i)^{A_m}].

Averaged over contexts these give the expected share of contexts collapsed by generation m,
the expected surviving vocabulary per context and the expected number of n-gram types lost:
the quantities :mod:`.metrics` measures (``collapsed_share``, ``support_mean``, ``types``).
"""

from __future__ import annotations

import numpy as np

from ..theory.genealogy import lineage_pmf
from .table import NgramTable

__all__ = ["LARGEST_SIZE", "fixed_contexts_prediction"]

#: Largest S_j the prediction takes (the law of A_m is a dense S_j × S_j chain).
LARGEST_SIZE = 4096


def fixed_contexts_prediction(table: NgramTable, sizes: np.ndarray,
                              generations: int) -> dict[str, np.ndarray]:
    """Expected ``collapsed_share``, ``support_mean`` and ``types`` at m = 0 … generations
    (each (generations + 1,)) for p(0) = ``table`` and S_j = ``sizes``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.max(initial=0) > LARGEST_SIZE:
        raise ValueError(f"The exact per-context prediction takes S_j ≤ {LARGEST_SIZE}; this "
                         f"table's largest is {int(sizes.max())}: lower the ratio.")
    p = table.frequencies
    collapsed = np.zeros((table.n_contexts, generations + 1))
    alive = np.zeros((table.n_entries, generations + 1))
    support = table.supports
    collapsed[:, 0] = support == 1
    alive[:, 0] = 1.0
    row = table.row_of_entry
    for size in np.unique(sizes):
        contexts = np.flatnonzero(sizes == size)
        entries = np.flatnonzero(np.isin(row, contexts))
        # law[m−1, k−1] = P(A_m = k), m = 1 … generations
        law = lineage_pmf(int(size), int(size), generations - 1)
        k = np.arange(1, size + 1)
        pe = p[entries]
        alive[entries, 1:] = 1.0 - ((1.0 - pe)[:, None] ** k) @ law.T
        dirac = (pe[:, None] ** k) @ law.T                      # (entries, generations)
        sums = np.zeros((table.n_contexts, generations))
        np.add.at(sums, row[entries], dirac)
        collapsed[contexts, 1:] = sums[contexts]
    types = np.zeros((generations + 1,))
    for m in range(generations + 1):
        types[m] = alive[:, m].sum()
    return {"collapsed_share": collapsed.mean(axis=0),
            "support_mean": types / table.n_contexts,
            "types": types}
