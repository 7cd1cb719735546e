"""Diversity of the text a model writes: type–token ratio and distinct-n.

Both fall as the sample grows, so they are measured on a text of fixed size (the runner's
``EVAL_STREAMS`` × ``EVAL_LENGTH`` tokens), n-grams counted within streams.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TEXT_METRICS", "distinct_n", "text_metrics"]

TEXT_METRICS = ("type_token_ratio", "distinct_2", "distinct_3")


def distinct_n(streams: np.ndarray, n: int) -> float:
    """Distinct n-grams over all n-grams of ``streams`` (streams, length), within streams."""
    streams = np.asarray(streams, dtype=np.int64)
    length = streams.shape[1]
    if length < n:
        return float("nan")
    base = int(streams.max(initial=0)) + 1
    keys = np.zeros((streams.shape[0], length - n + 1), dtype=np.int64)
    for r in range(n):
        keys = keys * base + streams[:, r : length - n + 1 + r]
    return np.unique(keys).size / keys.size


def text_metrics(streams: np.ndarray) -> dict[str, float]:
    """``type_token_ratio`` (distinct tokens over tokens), ``distinct_2``, ``distinct_3``."""
    return {"type_token_ratio": distinct_n(streams, 1), "distinct_2": distinct_n(streams, 2),
            "distinct_3": distinct_n(streams, 3)}
