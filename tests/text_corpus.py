"""A generated text for the transformer tests: learnable structure, nothing downloaded."""

from __future__ import annotations

import numpy as np


def generated_text(n_chars: int = 120_000, seed: int = 0) -> str:
    """Lines of pseudo-words from a fixed alphabet: learnable structure, no download."""
    rng = np.random.default_rng(seed)
    syllables = ["th", "e", "an", "ou", "r", "st", "in", "g", "ld", "o", "wh", "y", "ar", "a"]
    words, n = [], 0
    while n < n_chars:
        word = "".join(rng.choice(syllables, size=rng.integers(1, 4)))
        word = word.capitalize() if rng.random() < 0.1 else word
        sep = "\n" if rng.random() < 0.12 else (", " if rng.random() < 0.05 else " ")
        words.append(word + sep)
        n += len(word) + len(sep)
    return "".join(words)[:n_chars]
