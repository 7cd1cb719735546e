"""Exact enumeration shared by the theory tests: the reference they check closed forms against."""

from __future__ import annotations

import itertools


def compositions(total: int, parts: int) -> list[tuple[int, ...]]:
    """All count vectors of ``parts`` non-negative ints summing to ``total`` (stars and bars)."""
    out = []
    for cuts in itertools.combinations(range(total + parts - 1), parts - 1):
        edges = (-1, *cuts, total + parts - 1)
        out.append(tuple(b - a - 1 for a, b in itertools.pairwise(edges)))
    return out
