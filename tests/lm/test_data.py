"""Corpus loading, the character tokenizer and the 90/10 split (paper §4.1)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from modelcollapse import corpus as data
from modelcollapse.corpus import CharTokenizer, load_corpus, load_text

SHAKESPEARE = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare.txt"


def test_tokenizer_round_trip_and_sorted_ids(text):
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text[:5000])
    assert ids.dtype == np.uint8
    assert tok.decode(ids) == text[:5000]
    assert list(tok.chars) == sorted(set(text))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("€")


def test_split_is_first_ninety_percent(text):
    c = load_corpus(text=text)
    assert len(c.train) == int(len(text) * 0.9)
    assert len(c.train) + len(c.val) == len(text)
    assert c.tokenizer.decode(c.val[:50]) == text[len(c.train): len(c.train) + 50]


@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="tiny Shakespeare not present")
def test_tiny_shakespeare_matches_the_paper():
    c = load_corpus(SHAKESPEARE)
    assert c.sha256 == data.CORPUS_SHA256
    assert c.vocab_size == 65
    assert (len(c.train), len(c.val)) == (1_003_854, 111_540)


def test_download_verifies_checksum_and_caches(tmp_path):
    payload = "To be, or not to be\n" * 50
    src = tmp_path / "remote.txt"
    src.write_text(payload)
    digest = hashlib.sha256(payload.encode()).hexdigest()
    cache = tmp_path / "cache"
    got = load_text(download=True, cache_dir=cache, url=src.as_uri(), sha256=digest,
                    n_bytes=len(payload))
    assert got == payload
    src.unlink()  # now served from the cache, without the network
    assert load_text(cache_dir=cache, sha256=digest) == payload


def test_download_with_wrong_checksum_writes_nothing(tmp_path):
    src = tmp_path / "remote.txt"
    src.write_text("not the corpus")
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="SHA-256"):
        load_text(download=True, cache_dir=cache, url=src.as_uri(), n_bytes=None)
    assert not cache.exists() or not any(cache.iterdir())


def test_missing_cache_without_download_names_the_flag(tmp_path):
    with pytest.raises(OSError, match="--download"):
        load_text(cache_dir=tmp_path)
