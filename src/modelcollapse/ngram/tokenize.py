"""Tokenizers for n-gram models of real text: characters, words, byte-level BPE.

All three turn text into int ids 0 … V−1 and back, and are built from the corpus itself
(nothing is downloaded):

* ``char``: one id per distinct character of the whole corpus (tiny Shakespeare: 65), as the
  paper's §4.1 and :mod:`modelcollapse.lm` tokenise it.
* ``word``: the pieces of :data:`WORD_PATTERN` — runs of letters (with inner apostrophes),
  runs of digits, single other symbols, and runs of white space kept as tokens, so decoding
  is concatenation and loses nothing. The vocabulary is the training split's pieces; id 0,
  ``<unk>``, stands for pieces only the validation text has.
* ``bpe``: byte-level BPE trained on the training split with the Hugging Face ``tokenizers``
  library to a vocabulary of ``vocab_size`` (every byte is in its alphabet, so no text is
  unknown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .._validation import check_choice, check_int
from ..corpus import CharTokenizer, token_dtype

__all__ = ["TOKENIZERS", "WORD_PATTERN", "BpeTokenizer", "Tokenizer", "WordTokenizer",
           "build_tokenizer"]

#: Word pieces: letters with inner apostrophes (``o'er``), digits, any other single symbol,
#: white space runs. Every character of a text is in exactly one piece.
WORD_PATTERN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*|\d+|\s+|[^\w\s]|_")

TOKENIZERS = ("char", "word", "bpe")


class Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids) -> str: ...


@dataclass(frozen=True)
class WordTokenizer:
    """Words, numbers, symbols and white space (:data:`WORD_PATTERN`); id 0 is ``<unk>``."""

    pieces: tuple[str, ...]   # id → piece; pieces[0] == "<unk>"

    @classmethod
    def from_text(cls, text: str) -> WordTokenizer:
        return cls(("<unk>", *sorted(set(WORD_PATTERN.findall(text)))))

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def encode(self, text: str) -> np.ndarray:
        index = {piece: i for i, piece in enumerate(self.pieces)}
        ids = [index.get(piece, 0) for piece in WORD_PATTERN.findall(text)]
        return np.asarray(ids, dtype=token_dtype(self.vocab_size))

    def decode(self, ids) -> str:
        return "".join(self.pieces[int(i)] for i in np.ravel(ids))


@dataclass(frozen=True)
class BpeTokenizer:
    """Byte-level BPE (Hugging Face ``tokenizers``), trained on the corpus's training text."""

    model: object   # tokenizers.Tokenizer

    @classmethod
    def from_text(cls, text: str, vocab_size: int) -> BpeTokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        model = HFTokenizer(models.BPE())
        model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        model.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        model.train_from_iterator(_lines(text), trainer=trainer)
        return cls(model)

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_vocab_size())

    def encode(self, text: str) -> np.ndarray:
        # Line by line: the pre-tokenizer splits there anyway, and a batch runs in parallel.
        lines = _lines(text)
        ids = [np.asarray(e.ids, dtype=np.int64) for e in self.model.encode_batch(lines)]
        return np.concatenate(ids).astype(token_dtype(self.vocab_size)) if ids else \
            np.zeros(0, token_dtype(self.vocab_size))

    def decode(self, ids) -> str:
        return self.model.decode([int(i) for i in np.ravel(ids)])


def _lines(text: str) -> list[str]:
    """The text cut after each newline (the newline kept), so the pieces join back to it."""
    return text.splitlines(keepends=True)


def build_tokenizer(kind: str, full_text: str, train_text: str, *,
                    vocab_size: int | None = None, where: str = "ngram") -> Tokenizer:
    """The ``kind`` tokenizer for a corpus: ``char`` from the whole text, ``word`` and
    ``bpe`` from its training split (``vocab_size``: BPE only)."""
    check_choice(kind, "tokenizer", TOKENIZERS, where=where)
    if kind != "bpe" and vocab_size is not None:
        raise ValueError(f"The 'vocab_size' parameter of {where} applies to the bpe "
                         f"tokenizer only. Got {vocab_size} with tokenizer {kind!r}.")
    if kind == "char":
        return CharTokenizer.from_text(full_text)
    if kind == "word":
        return WordTokenizer.from_text(train_text)
    vocab_size = check_int(2000 if vocab_size is None else vocab_size, "vocab_size",
                           low=257, high=1_000_000, where=where)
    return BpeTokenizer.from_text(train_text, vocab_size)
