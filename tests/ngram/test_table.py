"""Counting n-grams, the tokenizers, and draws over ragged rows, against slow references."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from modelcollapse.ngram.ragged import RowLayout
from modelcollapse.ngram.table import NgramTable, largest_order
from modelcollapse.ngram.tokenize import build_tokenizer
from text_corpus import corpus_text


def slow_counts(streams: list[list[int]], k: int) -> Counter:
    """(context tuple, token) → count, by walking every stream."""
    out: Counter = Counter()
    for s in streams:
        for i in range(k, len(s)):
            out[(tuple(s[i - k : i]), s[i])] += 1
    return out


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_counting_equals_a_slow_reference_on_a_small_text(k):
    tok = build_tokenizer("char", corpus_text(), corpus_text())
    text = corpus_text()[:3000]
    streams = [tok.encode(text[:1700]).tolist(), tok.encode(text[1700:]).tolist()]
    table = NgramTable.count([np.asarray(s) for s in streams], k, tok.vocab_size)
    expected = slow_counts(streams, k)
    V = tok.vocab_size
    got = Counter()
    for j in range(table.n_contexts):
        key, ctx = int(table.keys[j]), []
        for _ in range(k):
            ctx.append(key % V)
            key //= V
        for e in range(table.offsets[j], table.offsets[j + 1]):
            got[(tuple(reversed(ctx)), int(table.tokens[e]))] = int(table.counts[e])
    assert got == expected
    assert table.totals.sum() == sum(len(s) - k for s in streams)   # no n-gram across streams
    assert np.all(np.diff(table.keys) > 0) and np.all(table.counts >= 1)


def test_merge_adds_counts_and_lookup_finds_rows():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 5, 400), rng.integers(0, 5, 300)
    merged = NgramTable.count(a, 2, 5).merge(NgramTable.count(b, 2, 5))
    both = NgramTable.count([a, b], 2, 5)
    for name in ("keys", "offsets", "tokens", "counts"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(both, name))
    rows = both.rows(np.array([both.keys[3], 10**9]))
    assert rows.tolist() == [3, -1]


def test_orders_whose_keys_overflow_are_refused():
    assert largest_order(65) == 9
    with pytest.raises(ValueError, match="'order' parameter must be at most"):
        NgramTable.count(np.zeros(10, np.int64), 11, 65)


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_tokenizers_round_trip_the_training_text(kind):
    text = corpus_text()[:60_000]
    cut = 54_000
    tok = build_tokenizer(kind, text, text[:cut], vocab_size=400 if kind == "bpe" else None)
    ids = tok.encode(text[:cut])
    assert tok.decode(ids) == text[:cut]
    assert ids.max() < tok.vocab_size


def test_bpe_training_is_deterministic_and_sized():
    text = corpus_text()[:60_000]
    a = build_tokenizer("bpe", text, text, vocab_size=500)
    b = build_tokenizer("bpe", text, text, vocab_size=500)
    assert a.vocab_size == b.vocab_size <= 500
    np.testing.assert_array_equal(a.encode(text[:5000]), b.encode(text[:5000]))


def test_ragged_multinomial_keeps_row_sizes_and_means():
    layout = RowLayout(np.array([0, 3, 4, 8]))
    w = np.array([0.2, 0.3, 0.5, 1.0, 0.1, 0.2, 0.3, 0.4])
    sizes = np.tile([10, 5, 20], (4000, 1))
    x = layout.multinomial(np.random.default_rng(0), sizes, w)
    np.testing.assert_array_equal(layout.row_sums(x), sizes)
    n = np.repeat([10, 5, 20], [3, 1, 4])
    mean, var = n * w, n * w * (1 - w)
    z = (x.mean(axis=0) - mean) / np.sqrt(np.maximum(var, 1e-300) / 4000)
    assert np.all(np.abs(z[var > 0]) < 4)


def test_ragged_draws_without_replacement_stay_within_the_pool():
    layout = RowLayout(np.array([0, 3, 8]))
    pool = np.tile([3, 0, 5, 2, 1, 1, 1, 1], (3000, 1))
    x = layout.without_replacement(np.random.default_rng(2), np.tile([4, 6], (3000, 1)), pool)
    np.testing.assert_array_equal(layout.row_sums(x), np.tile([4, 6], (3000, 1)))
    assert np.all(x <= pool)
    # hypergeometric mean: size · share of the row's pool
    expected = np.array([4 * 3 / 8, 0, 4 * 5 / 8, 6 * 2 / 6, 1, 1, 1, 1])
    var = np.array([4 * 3 / 8 * 5 / 8 * 4 / 7, 0, 4 * 5 / 8 * 3 / 8 * 4 / 7,
                    6 * 2 / 6 * 4 / 6 * 0 / 5, 0, 0, 0, 0])
    free = var > 0
    z = (x.mean(axis=0)[free] - expected[free]) / np.sqrt(var[free] / 3000)
    assert np.all(np.abs(z) < 4)
    np.testing.assert_array_equal(x.mean(axis=0)[~free], expected[~free])
