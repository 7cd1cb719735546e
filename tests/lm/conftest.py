"""Fixtures of the transformer tests: a small real corpus and the tiny preset.

The corpus is the first 120,000 characters of tiny Shakespeare when the file is present
(../shared/data), else a generated text with the same kind of structure; nothing here
touches the network. Every test runs on the CPU in float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

SHAKESPEARE = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare.txt"


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


@pytest.fixture(scope="session")
def text() -> str:
    if SHAKESPEARE.exists():
        return SHAKESPEARE.read_text(encoding="utf-8")[:120_000]
    return generated_text()


@pytest.fixture(scope="session")
def corpus(text):
    from modelcollapse.lm import load_corpus

    return load_corpus(text=text)


@pytest.fixture(scope="session")
def tiny():
    from modelcollapse.lm import TINY

    return TINY


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tests' models are tiny: one intra-op thread is as fast as two, and it does not
    collapse when other processes share the two cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
