"""Sampling from an n-gram table: engines against a reference loop and each other, the
back-off to the unigram computed by hand, next-token frequencies against the fitted model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelcollapse.corpus import load_corpus
from modelcollapse.ngram import sampler as generate_module
from modelcollapse.ngram.sampler import NUMBA_AVAILABLE, generate
from modelcollapse.ngram.table import NgramTable, context_keys
from text_corpus import generated_text

SHAKESPEARE = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare.txt"

needs_numba = pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba is not installed")
ENGINES = ["numpy", pytest.param("numba", marks=needs_numba)]


@pytest.fixture(scope="module")
def corpus():
    """Tiny Shakespeare's first 200k training characters when present, else a generated text."""
    if SHAKESPEARE.exists():
        full = load_corpus(SHAKESPEARE)
        return full.train[:200_000], full.vocab_size
    full = load_corpus(text=generated_text(200_000))
    return full.train, full.vocab_size


def _tables(corpus, order):
    """The table counted from the corpus cut into streams of 50 tokens, so that some contexts
    occur only at a stream's end (seen as tokens, never as a row)."""
    train, vocab = corpus
    cut = train[: train.size // 50 * 50].reshape(-1, 50)
    return NgramTable.count(cut, order, vocab)


def _starts(corpus, order, streams, rng):
    """k-token slices of the text at random positions, plus random contexts (mostly unseen)."""
    train, vocab = corpus
    pos = rng.integers(0, train.size - order, streams // 2)
    text = train[pos[:, None] + np.arange(order)]
    noise = rng.integers(0, vocab, (streams - streams // 2, order))
    return np.concatenate([text, noise]).astype(np.int64)


def reference(table: NgramTable, starts: np.ndarray, length: int, seed: int) -> np.ndarray:
    """Obviously correct and slow: per stream and token, a dict lookup of the context, the
    row's counts in sorted order (or the unigram), and a scan for the first cumulative count
    above ⌊u·T⌋."""
    k = table.order
    rows = {}
    for j, key in enumerate(table.keys):
        a, b = table.offsets[j], table.offsets[j + 1]
        rows[int(key)] = (table.tokens[a:b].tolist(), table.counts[a:b].tolist())
    unigram = (list(range(table.vocab_size)), table.unigram().tolist())
    u = np.random.default_rng(seed).random((starts.shape[0], length - k))
    out = np.zeros((starts.shape[0], length), np.int64)
    for s in range(starts.shape[0]):
        stream = [int(x) for x in starts[s]]
        for t in range(length - k):
            key = 0
            for c in stream[len(stream) - k:]:
                key = key * table.vocab_size + c
            tokens, counts = rows.get(key, unigram) if k else unigram
            total = sum(counts)
            target = min(int(u[s, t] * total), total - 1)
            running = 0
            for token, count in zip(tokens, counts):
                running += count
                if running > target:
                    stream.append(token)
                    break
        out[s] = stream
    return out


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_engine_matches_reference_loop(corpus, order, engine):
    table = _tables(corpus, order)
    starts = _starts(corpus, order, 40, np.random.default_rng(order))
    got = generate(table, starts, 30, np.random.default_rng(7), engine=engine)
    np.testing.assert_array_equal(got, reference(table, starts, 30, seed=7))


@needs_numba
@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_numba_and_numpy_bit_identical(corpus, order):
    table = _tables(corpus, order)
    starts = _starts(corpus, order, 3000, np.random.default_rng(10 + order))
    a = generate(table, starts, 80, np.random.default_rng(3), engine="numba")
    b = generate(table, starts, 80, np.random.default_rng(3), engine="numpy")
    assert a.dtype == b.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("engine", ENGINES)
def test_binary_search_lookup_matches_dense(corpus, engine, monkeypatch):
    """Contexts found by binary search in table.keys (large V^k) give the same streams."""
    table = _tables(corpus, 3)
    starts = _starts(corpus, 3, 500, np.random.default_rng(5))
    dense = generate(table, starts, 40, np.random.default_rng(1), engine=engine)
    monkeypatch.setattr(generate_module, "DENSE_LOOKUP_LIMIT", 0)
    assert generate_module._sampler(table).lookup is None
    np.testing.assert_array_equal(
        generate(table, starts, 40, np.random.default_rng(1), engine=engine), dense)


@pytest.mark.parametrize("engine", ENGINES)
def test_starts_kept_and_seed_decides(corpus, engine):
    table = _tables(corpus, 2)
    starts = _starts(corpus, 2, 200, np.random.default_rng(0))
    a = generate(table, starts, 60, np.random.default_rng(11), engine=engine)
    assert a.shape == (200, 60)
    np.testing.assert_array_equal(a[:, :2], starts)
    np.testing.assert_array_equal(a, generate(table, starts, 60, np.random.default_rng(11),
                                              engine=engine))
    other = generate(table, starts, 60, np.random.default_rng(12), engine=engine)
    assert (other[:, 2:] != a[:, 2:]).mean() > 0.3


def test_length_equal_to_order_and_no_streams(corpus):
    table = _tables(corpus, 2)
    starts = _starts(corpus, 2, 6, np.random.default_rng(0))
    np.testing.assert_array_equal(generate(table, starts, 2, np.random.default_rng(0)), starts)
    assert generate(table, starts[:0], 9, np.random.default_rng(0)).shape == (0, 9)


@pytest.mark.parametrize("engine", ENGINES)
def test_unseen_context_draws_from_unigram_exactly(engine):
    """Stream [0, 1, 0, 1, 2] at order 1, V = 4: rows 0 → {1: 2} and 1 → {0: 1, 2: 1};
    contexts 2 (it ended the stream) and 3 (never seen) back off to the unigram of predicted
    tokens, counts (1, 2, 1, 0): cumulative (1, 3, 4, 4), token 3 never drawn."""
    table = NgramTable.count(np.array([0, 1, 0, 1, 2]), 1, 4)
    starts = np.array([[2], [3]] * 500)
    u = np.random.default_rng(4).random((1000, 1))
    expected = np.searchsorted([1, 3, 4, 4], np.floor(u[:, 0] * 4), side="right")
    got = generate(table, starts, 2, np.random.default_rng(4), engine=engine)
    np.testing.assert_array_equal(got[:, 1], expected)
    assert set(np.unique(got[:, 1])) == {0, 1, 2}


@pytest.mark.parametrize("engine", ENGINES)
def test_order_zero_draws_every_token_from_unigram(engine):
    table = NgramTable.count(np.array([3, 3, 1, 3, 0]), 0, 5)  # unigram (1, 1, 0, 3, 0)
    u = np.random.default_rng(2).random((4, 25))
    expected = np.searchsorted([1, 2, 2, 5, 5], np.floor(u * 5), side="right")
    got = generate(table, np.zeros((4, 0), np.int64), 25, np.random.default_rng(2),
                   engine=engine)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("engine", ENGINES)
def test_next_token_frequencies_match_the_row(corpus, engine):
    """At the most frequent context of order 2, the tokens that follow it in generated text
    are draws from its row: by the Markov property each count is binomial(n, p_i) given the
    number n of visits, so z_i = (o_i − n p_i) / √(n p_i (1 − p_i)) has |z_i| < 4 (a one-in-
    15,000 event per token; the fixed seed makes the test deterministic)."""
    table = _tables(corpus, 2)
    row = int(np.argmax(table.totals))
    starts = _starts(corpus, 2, 4000, np.random.default_rng(8))
    out = generate(table, starts, 200, np.random.default_rng(9), engine=engine).astype(np.int64)
    keys = context_keys(out, 2, table.vocab_size)  # (streams, 198) context of token t + 2
    nxt = out[:, 2:][keys == table.keys[row]]
    n = nxt.size
    assert n > 20_000
    p = np.zeros(table.vocab_size)
    span = slice(table.offsets[row], table.offsets[row + 1])
    p[table.tokens[span]] = table.frequencies[span]
    observed = np.bincount(nxt, minlength=table.vocab_size)
    assert observed[p == 0].sum() == 0
    live = p > 0
    z = (observed[live] - n * p[live]) / np.sqrt(n * p[live] * (1 - p[live]))
    assert np.abs(z).max() < 4, z


@pytest.mark.parametrize("engine", ENGINES)
def test_seen_contexts_never_get_new_successors(corpus, engine):
    table = _tables(corpus, 3)
    starts = _starts(corpus, 3, 1000, np.random.default_rng(6))
    out = generate(table, starts, 100, np.random.default_rng(6), engine=engine).astype(np.int64)
    keys = context_keys(out, 3, table.vocab_size)  # (streams, 97)
    seen = table.rows(keys) >= 0
    grams = keys * table.vocab_size + out[:, 3:]
    assert seen.mean() > 0.5
    assert np.all(table.gram_counts(grams[seen]) > 0)


def test_large_vocabulary_gives_int32():
    rng = np.random.default_rng(0)
    table = NgramTable.count(rng.integers(0, 300, 5000), 1, 300)
    starts = rng.integers(0, 300, (50, 1))
    engines = ["numpy", "numba"] if NUMBA_AVAILABLE else ["numpy"]
    outs = [generate(table, starts, 20, np.random.default_rng(1), engine=e) for e in engines]
    assert all(o.dtype == np.int32 for o in outs)
    np.testing.assert_array_equal(outs[0], outs[-1])


def test_auto_falls_back_to_numpy_without_numba(corpus, monkeypatch):
    table = _tables(corpus, 1)
    starts = _starts(corpus, 1, 50, np.random.default_rng(0))
    want = generate(table, starts, 20, np.random.default_rng(0), engine="numpy")
    monkeypatch.setattr(generate_module, "NUMBA_AVAILABLE", False)
    np.testing.assert_array_equal(generate(table, starts, 20, np.random.default_rng(0)), want)
    with pytest.raises(ValueError, match=r"'engine'.*numba is not installed"):
        generate(table, starts, 20, np.random.default_rng(0), engine="numba")


@pytest.mark.parametrize(("change", "name", "error"), [
    ({"starts": np.zeros((3, 1), np.int64)}, "starts", ValueError),
    ({"starts": np.zeros(3, np.int64)}, "starts", ValueError),
    ({"starts": np.full((3, 2), 999)}, "starts", ValueError),
    ({"starts": np.zeros((3, 2))}, "starts", TypeError),
    ({"length": 1}, "length", ValueError),
    ({"length": 5.0}, "length", TypeError),
    ({"engine": "torch"}, "engine", ValueError),
    ({"rng": 0}, "rng", TypeError),
    ({"table": "table"}, "table", TypeError),
])
def test_bad_input_names_the_parameter(corpus, change, name, error):
    args = {"table": _tables(corpus, 2), "starts": np.zeros((3, 2), np.int64), "length": 10,
            "rng": np.random.default_rng(0), "engine": "auto"} | change
    with pytest.raises(error, match=f"'{name}' parameter of generate") as info:
        generate(args.pop("table"), args.pop("starts"), args.pop("length"), args.pop("rng"),
                 **args)
    assert "\n" not in str(info.value)


def test_empty_table_is_refused():
    table = NgramTable.count(np.array([1]), 1, 3)
    with pytest.raises(ValueError, match="'table' parameter of generate"):
        generate(table, np.zeros((2, 1), np.int64), 4, np.random.default_rng(0))
