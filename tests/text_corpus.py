"""A generated text for the transformer tests: learnable structure, nothing downloaded."""

from __future__ import annotations

from functools import cache
from pathlib import Path

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


SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


@cache
def corpus_text(n_chars: int = 300_000) -> str:
    """Tiny Shakespeare's first ``n_chars`` when the shared copy is here, else a generated
    text of that length (nothing downloaded)."""
    if SHAKESPEARE.is_file():
        return SHAKESPEARE.read_text(encoding="utf-8")[:n_chars]
    return generated_text(n_chars)
