"""Fixtures of the transformer tests: a small real corpus and the tiny preset.

The corpus is the first 120,000 characters of tiny Shakespeare when the file is present
(../shared/data), else a generated text with the same kind of structure; nothing here
touches the network. Every test runs on the CPU in float32.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from text_corpus import generated_text

torch = pytest.importorskip("torch")

SHAKESPEARE = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare.txt"


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
