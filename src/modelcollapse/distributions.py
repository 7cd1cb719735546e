"""Initial distributions p(0) (paper eq. 3): families, an exact-S0 constructor, and file loading.

Every function returns float64 arrays of shape ``(vocab,)`` (or ``(contexts, vocab)`` for the
multi-context helpers) whose rows lie on the probability simplex.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.optimize import brentq
from scipy.special import logsumexp

from ._validation import check_float, check_int, check_probabilities
from .rng import SeedLike, generator

__all__ = [
    "PAPER_FIG2_PAIRS",
    "PAPER_FIG4_PAIRS",
    "dirichlet_distribution",
    "load_distribution",
    "random_context_distributions",
    "sigma",
    "support_size",
    "target_distribution",
    "uniform_distribution",
    "zipf_distribution",
]

#: (S0, support) pairs of the paper's Fig. 2 (fully synthetic), vocabulary s = 600.
PAPER_FIG2_PAIRS = ((0.01, 181), (0.1, 29), (0.5, 10), (0.7, 9))
#: (S0, support) pairs of the paper's Figs. 3-4 (partially synthetic), vocabulary s = 600.
PAPER_FIG4_PAIRS = ((0.01, 484), (0.1, 52), (0.5, 22), (0.7, 16))

#: How close sum(p**2) must come to the requested S0.
S0_TOLERANCE = 1e-9


def sigma(p: np.ndarray) -> np.ndarray:
    """σ = ‖p‖₂² along the last axis (the paper's S0 for p(0))."""
    return np.sum(np.square(p), axis=-1)


def support_size(p: np.ndarray) -> np.ndarray:
    """Number of tokens with positive probability along the last axis (the paper's s̃)."""
    return np.count_nonzero(p > 0, axis=-1)


def _place(vocab: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Put ``weights`` on a uniformly random subset of the vocabulary."""
    p = np.zeros(vocab)
    p[rng.choice(vocab, size=weights.size, replace=False)] = weights
    return p


def target_distribution(vocab: int, support: int, S0: float, *,
                        seed: SeedLike = None) -> np.ndarray:
    """A random p(0) over ``vocab`` tokens with exactly ``support`` positive entries and Σp² = S0.

    Base weights w are i.i.d. Exp(1) on a random support; the family p_a ∝ w^a runs from the
    uniform distribution (a = 0, Σp² = 1/support) towards a Dirac mass (a → ∞), and Σp² is
    increasing in a, so the exponent matching S0 is found by a root search (to 1e-12) and the
    result is checked to 1e-9. Feasible S0 are [1/support, 1), plus exactly 1 when support = 1.
    """
    vocab = check_int(vocab, "vocab", low=1, where="target_distribution")
    support = check_int(support, "support", low=1, high=vocab, where="target_distribution")
    S0 = check_float(S0, "S0", low=1.0 / support, high=1.0, where="target_distribution")
    if support == 1 or S0 == 1.0:
        if support != 1:
            raise ValueError("The 'S0' parameter of target_distribution can be 1 only when "
                             f"support is 1. Got support={support} instead.")
        return _place(vocab, np.ones(1), generator(seed))
    rng = generator(seed)
    log_w = np.log(rng.exponential(size=support))
    log_w -= log_w.max()

    def log_probs(a: float) -> np.ndarray:
        z = a * log_w
        return z - logsumexp(z)

    def excess(a: float) -> float:
        return float(np.exp(logsumexp(2 * log_probs(a)))) - S0

    upper = 1.0
    while excess(upper) < 0:
        upper *= 2.0
        if upper > 1e6:
            raise ValueError(f"The 'S0' parameter of target_distribution is too close to 1 for "
                             f"support {support}: every token must keep a positive probability. "
                             f"Got {S0!r} instead.")
    a = 0.0 if S0 == 1.0 / support else brentq(excess, 0.0, upper, xtol=1e-14, rtol=1e-14)
    p = np.exp(log_probs(a))
    p /= p.sum()
    if np.any(p <= 0) or abs(sigma(p) - S0) > S0_TOLERANCE:
        raise ValueError(f"The 'S0' parameter of target_distribution cannot be met to "
                         f"{S0_TOLERANCE:g} with support {support}. Got {S0!r} instead.")
    return _place(vocab, p, rng)


def zipf_distribution(vocab: int, exponent: float = 1.0, *,
                      support: int | None = None) -> np.ndarray:
    """Zipf law p_i ∝ i^(−exponent) on the first ``support`` tokens (all of them by default)."""
    vocab = check_int(vocab, "vocab", low=1, where="zipf_distribution")
    support = vocab if support is None else check_int(support, "support", low=1, high=vocab,
                                                      where="zipf_distribution")
    exponent = check_float(exponent, "exponent", low=0.0, where="zipf_distribution")
    p = np.zeros(vocab)
    p[:support] = np.arange(1, support + 1, dtype=float) ** -exponent
    return p / p.sum()


def dirichlet_distribution(vocab: int, alpha: float = 1.0, *, support: int | None = None,
                           seed: SeedLike = None) -> np.ndarray:
    """A draw from the symmetric Dirichlet(alpha) on a random support of the given size."""
    vocab = check_int(vocab, "vocab", low=1, where="dirichlet_distribution")
    support = vocab if support is None else check_int(support, "support", low=1, high=vocab,
                                                      where="dirichlet_distribution")
    alpha = check_float(alpha, "alpha", low=0.0, low_open=True, where="dirichlet_distribution")
    rng = generator(seed)
    # Gamma draws can underflow to 0 for tiny alpha; redraw until the support is exact.
    for _ in range(100):
        w = rng.gamma(alpha, size=support)
        if np.all(w > 0):
            return _place(vocab, w / w.sum(), rng)
    raise ValueError(f"The 'alpha' parameter of dirichlet_distribution is too small to keep "
                     f"{support} positive entries. Got {alpha!r} instead.")


def uniform_distribution(vocab: int, *, support: int | None = None) -> np.ndarray:
    """Uniform on the first ``support`` tokens (all of them by default): Σp² = 1/support."""
    vocab = check_int(vocab, "vocab", low=1, where="uniform_distribution")
    support = vocab if support is None else check_int(support, "support", low=1, high=vocab,
                                                      where="uniform_distribution")
    p = np.zeros(vocab)
    p[:support] = 1.0 / support
    return p


def random_context_distributions(contexts: int, vocab: int, *, alpha: float = 1.0,
                                 seed: SeedLike = None) -> np.ndarray:
    """One Dirichlet(alpha) next-token distribution per context, shape (contexts, vocab).

    This is the multi-context p(0) of the paper's Fig. 1 (s = 3, ℓ = 4, c = 81 contexts).
    """
    contexts = check_int(contexts, "contexts", low=1, where="random_context_distributions")
    rng = generator(seed)
    return np.stack([dirichlet_distribution(vocab, alpha, seed=rng) for _ in range(contexts)])


def load_distribution(path: str | Path, *, where: str = "load_distribution") -> np.ndarray:
    """Load p(0) from ``.npy``, ``.txt``/``.csv`` (numbers split by commas or whitespace, one
    row per context) or ``.json`` (a list, a list of lists, or an object with key ``"p"``).

    The result is validated: finite, non-negative, each row summing to 1 within tolerance.
    A file whose numbers would not fit in memory is refused before it is read. ``where``: the
    verb the messages name.
    """
    path = Path(path)

    def refuse(rule: str, detail: object = None) -> ValueError:
        got = repr(str(path)) + (f" ({detail})" if detail is not None else "")
        return ValueError(f"The 'p0' parameter of {where} must {rule}. Got {got} instead.")

    if not path.is_file():
        raise refuse("name an existing file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".txt", ".csv", ".json"):
        raise refuse("be a .npy, .txt, .csv or .json file")
    _check_file_fits(path, suffix, where)
    try:
        if suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif suffix in (".txt", ".csv"):
            rows = [line.replace(",", " ").split()
                    for line in path.read_text(encoding="utf-8").splitlines()]
            rows = [r for r in rows if r and not r[0].startswith("#")]
            if len({len(r) for r in rows}) > 1:
                raise refuse("hold rows of equal length (one per context)",
                              f"lengths {sorted({len(r) for r in rows})}")
            data = np.array([[float(x) for x in r] for r in rows])
            data = data[0] if data.shape[0] == 1 else data
            if data.ndim == 2 and data.shape[1] == 1:
                data = data[:, 0]
        else:
            obj = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(obj, dict) and "p" not in obj:
                raise refuse('hold a list, a list of lists, or an object with key "p"',
                             f"keys {sorted(obj)[:5]}")
            data = np.array(obj["p"] if isinstance(obj, dict) else obj, dtype=float)
    except UnicodeDecodeError:
        raise refuse("be UTF-8 text (or .npy)", "bytes that are not UTF-8") from None
    except (OSError, EOFError, json.JSONDecodeError, ValueError, TypeError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith("The 'p0'"):
            raise
        raise refuse("be a readable file of numbers", str(exc).splitlines()[0][:80]) from None
    return check_probabilities(data, "p0", where=where)


#: Memory per byte of a text p(0) file while it is parsed (Python floats in lists, then the
#: array): a number takes at least two bytes of text ("1 ") and ~100 bytes parsed.
TEXT_PARSE_BYTES_PER_BYTE = 50


def _check_file_fits(path: Path, suffix: str, where: str) -> None:
    """Refuse a p(0) file too large to read: an .npy by the shape in its header, text by its
    size."""
    from .engine.footprint import check_fits

    if suffix == ".npy":
        try:
            with open(path, "rb") as fh:
                major, _ = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if major == 1
                               else np.lib.format.read_array_header_2_0)
                shape, _, _ = read_header(fh)
        except (ValueError, OSError):
            return  # not a readable .npy: np.load says why
        need, detail = 8 * 3 * int(np.prod(shape)), f"an array of shape {shape}"
    else:
        size = path.stat().st_size
        need, detail = TEXT_PARSE_BYTES_PER_BYTE * size, f"{size:,} bytes of text"
    check_fits(need, what="p(0) from its file", detail=detail,
               way_out="a smaller p(0), or save it as .npy (read without parsing)",
               where=where)
