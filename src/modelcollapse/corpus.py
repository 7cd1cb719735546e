"""The real text: a corpus read from a path or downloaded, its character tokenizer and its
90/10 train/validation split (shared by the transformer and n-gram families).

Paper §4.1 trains p(0) on tiny Shakespeare, tokenised by character (65 symbols), from the URL
below. The corpus is read from a path, or downloaded on request, verified against its
SHA-256 and cached; nothing here touches the network unless ``download=True``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._files import atomic_write
from ._validation import check_float

__all__ = [
    "CORPUS_BYTES",
    "CORPUS_SHA256",
    "CORPUS_URL",
    "CharTokenizer",
    "Corpus",
    "default_cache_dir",
    "load_corpus",
    "load_text",
    "token_dtype",
]

#: The tiny Shakespeare file cited in §4.1 of the paper, its checksum and its size.
CORPUS_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
              "tinyshakespeare/input.txt")
CORPUS_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
CORPUS_BYTES = 1_115_394
_CACHE_NAME = "tinyshakespeare.txt"


def default_cache_dir() -> Path:
    """``$MODELCOLLAPSE_CACHE``, else ``$XDG_CACHE_HOME/modelcollapse``, else ~/.cache/…"""
    if os.environ.get("MODELCOLLAPSE_CACHE"):
        return Path(os.environ["MODELCOLLAPSE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "modelcollapse"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(url: str, target: Path, *, sha256: str, n_bytes: int | None) -> None:
    """Fetch ``url`` into ``target`` atomically, refusing content with the wrong checksum."""
    with urllib.request.urlopen(url, timeout=60) as response:
        data = response.read()
    if (n_bytes is not None and len(data) != n_bytes) or _sha256(data) != sha256:
        raise OSError(f"Download from {url} has {len(data)} bytes and SHA-256 "
                      f"{_sha256(data)}; expected {n_bytes} bytes and {sha256}.")
    atomic_write(target, lambda fh: fh.write(data))


def load_text(path: str | Path | None = None, *, download: bool = False,
              cache_dir: str | Path | None = None, url: str = CORPUS_URL,
              sha256: str = CORPUS_SHA256, n_bytes: int | None = CORPUS_BYTES) -> str:
    """The corpus text: from ``path``, else from the cache, else downloaded if ``download``.

    A cached or downloaded file must match ``sha256``; a user-given path is taken as it is,
    if it is a readable UTF-8 text file (else one ValueError naming the 'corpus' parameter).
    """
    if path is not None:
        return _read_user_text(Path(path))
    cached = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cached / _CACHE_NAME
    if not cached.exists():
        if not download:
            raise OSError(f"The 'corpus' parameter is not set and no corpus is cached at "
                          f"{str(cached)!r}: pass a path, or download=True (--download) to "
                          f"fetch {url}.")
        _download(url, cached, sha256=sha256, n_bytes=n_bytes)
    data = cached.read_bytes()
    if _sha256(data) != sha256:
        raise OSError(f"The cached corpus {cached} has SHA-256 {_sha256(data)}, expected "
                      f"{sha256}; delete it and download again.")
    return data.decode("utf-8")


def _read_user_text(path: Path) -> str:
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not there"
        raise ValueError(f"The 'corpus' parameter must name an existing text file; "
                         f"{str(path)!r} is {what}.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"The 'corpus' parameter must name a UTF-8 text file; {str(path)!r} "
                         f"has a byte {exc.object[exc.start:exc.start + 1]!r} at offset "
                         f"{exc.start} that is not UTF-8.") from None
    except OSError as exc:
        raise ValueError(f"The 'corpus' parameter must name a readable text file; "
                         f"{str(path)!r}: {exc.strerror}.") from None


def token_dtype(vocab_size: int) -> np.dtype:
    """Smallest unsigned dtype for token ids (uint8 for character vocabularies)."""
    return np.dtype(np.uint8) if vocab_size <= 256 else np.dtype(np.int32)


@dataclass(frozen=True)
class CharTokenizer:
    """One token per distinct character of the corpus, ids in sorted character order."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text``, shape (len(text),); unknown characters raise ValueError."""
        # Characters are sorted by code point, so a binary search maps code points to ids.
        table = np.frombuffer(self.chars.encode("utf-32-le"), dtype=np.uint32)
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.minimum(np.searchsorted(table, codes), len(table) - 1)
        unknown = table[ids] != codes
        if np.any(unknown):
            bad = text[int(np.argmax(unknown))]
            raise ValueError(f"Character {bad!r} is not in the vocabulary.")
        return ids.astype(token_dtype(self.vocab_size))

    def decode(self, ids: np.ndarray | list[int]) -> str:
        return "".join(self.chars[int(i)] for i in np.ravel(ids))


@dataclass(frozen=True)
class Corpus:
    """A tokenised corpus split into training and validation tokens (1-D arrays)."""

    tokenizer: CharTokenizer
    train: np.ndarray
    val: np.ndarray
    sha256: str

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size


def load_corpus(path: str | Path | None = None, *, download: bool = False,
                cache_dir: str | Path | None = None, val_fraction: float = 0.1,
                text: str | None = None) -> Corpus:
    """Tokenise the corpus and split it: the first 1 − ``val_fraction`` for training, the rest
    for validation (nanoGPT's split: 1,003,854 and 111,540 characters of tiny Shakespeare)."""
    check_float(val_fraction, "val_fraction", low=0.0, high=0.5, low_open=True, where="corpus")
    if text is None:
        text = load_text(path, download=download, cache_dir=cache_dir)
    if len(text) < 10:
        raise ValueError(f"The 'corpus' parameter must name a text of at least 10 characters. "
                         f"Got {len(text)} characters instead.")
    tokenizer = CharTokenizer.from_text(text)
    ids = tokenizer.encode(text)
    cut = int(len(ids) * (1 - val_fraction))
    return Corpus(tokenizer, ids[:cut], ids[cut:], _sha256(text.encode("utf-8")))
