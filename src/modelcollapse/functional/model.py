"""Context embeddings, p(0), and the reduced coordinates of the softmax model (paper eq. 1).

The model of a run is W ∈ R^{s×d}; context j has embedding x_j ∈ R^d and next-token law
p_j = softmax(W x_j) (eq. 1 with x_j in place of the one-hot e_j of eq. 2). Embeddings are one
matrix X (c × d) shared by every run: they describe the contexts, not a model.

Reduced coordinates. W enters the fit only through W X^T, and the weight decay (λ/2)‖W‖² is
smallest with W in the row space of X; every solver here starts from W = 0 or from an earlier
fit, so W stays there (gradients lie in it). With the thin SVD X = U S V^T (rank r ≤ min(c, d))
the model is B = W V ∈ R^{s×r} with embeddings X̃ = U S (c × r) and ‖W‖ = ‖B‖: d > c costs no
more than d = c. One-hot and orthonormal embeddings have X̃ with orthogonal columns already and
are kept as they are (X̃ = X for one-hot, d = c).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..distributions import (
    dirichlet_distribution,
    target_distribution,
    uniform_distribution,
    zipf_distribution,
)

__all__ = ["EMBEDDINGS", "P0_FAMILIES", "Embeddings", "make_embeddings", "make_p0", "softmax"]

#: Kinds of context embeddings.
EMBEDDINGS = ("gaussian", "orthonormal", "onehot")
#: Families of p(0): ``softmax`` (a random W₀ of the model itself: realizable), ``logits``
#: (i.i.d. Gaussian logits per context: realizable when the embeddings have rank c), and the
#: statistical toolkit's per-context families.
P0_FAMILIES = ("softmax", "logits", "target", "zipf", "dirichlet", "uniform")


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(z) / Σ exp(z) along ``axis``, stable."""
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


@dataclass(frozen=True)
class Embeddings:
    """Context embeddings X (c × d) and the model's reduced coordinates (module docstring):
    ``reduced`` = X̃ = U S (c × r), ``basis`` = V (d × r), W = B V^T."""

    kind: str
    x: np.ndarray
    reduced: np.ndarray
    basis: np.ndarray

    @property
    def n_contexts(self) -> int:
        return self.x.shape[0]

    @property
    def dim(self) -> int:
        return self.x.shape[1]

    @property
    def rank(self) -> int:
        return self.reduced.shape[1]

    @property
    def separable(self) -> bool:
        """Whether the contexts' fits do not interact: X̃ is a multiple of the identity (one-hot
        or orthonormal embeddings with d ≥ c), so the fit of eq. 1 splits by context."""
        r = self.reduced
        return r.shape[0] == r.shape[1] and np.allclose(r, np.diag(np.diag(r))) and np.allclose(
            np.diag(r), r[0, 0])


def make_embeddings(kind: str, n_contexts: int, dim: int, rng: np.random.Generator
                    ) -> Embeddings:
    """Embeddings of ``n_contexts`` contexts in R^dim: ``gaussian`` i.i.d. N(0, I/d) (‖x_j‖ ≈ 1,
    §5 of the paper), ``orthonormal`` (rows of a random orthogonal matrix when d ≥ c; for d < c
    the c rows of a random d-frame scaled to unit norm are as close to orthogonal as d allows:
    the columns are orthonormal instead), ``onehot`` (x_j = e_j; needs d ≥ c: with d = c this is
    eq. 2's model)."""
    c, d = n_contexts, dim
    if kind == "onehot":
        if d < c:
            raise ValueError(f"The 'dim' parameter of functional must be at least 'contexts' "
                             f"({c}) for onehot embeddings. Got {d} instead.")
        x = np.zeros((c, d))
        x[np.arange(c), np.arange(c)] = 1.0
    elif kind == "orthonormal":
        q, _ = np.linalg.qr(rng.standard_normal((max(c, d), max(c, d))))
        x = q[:c, :d] if d >= c else q[:c, :d] * np.sqrt(c / d)
    elif kind == "gaussian":
        x = rng.standard_normal((c, d)) / np.sqrt(d)
    else:
        raise ValueError(f"The 'embedding' parameter of functional must be one of "
                         f"{sorted(EMBEDDINGS)}. Got {kind!r} instead.")
    reduced, basis = _reduce(x, kind)
    return Embeddings(kind, x, reduced, basis)


def _reduce(x: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    c, d = x.shape
    if kind == "onehot":
        return x[:, :c].copy(), np.eye(d)[:, :c]
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    keep = s > s.max() * max(c, d) * np.finfo(np.float64).eps
    return u[:, keep] * s[keep], vt[keep].T


def make_p0(family: str, embeddings: Embeddings, vocab: int, rng: np.random.Generator, *,
            scale: float = 1.0, support: int | None = None, S0: float = 0.1,
            zipf_exponent: float = 1.0, dirichlet_alpha: float = 1.0) -> np.ndarray:
    """p(0) (contexts, vocab).

    ``softmax``: p_j = softmax(W₀ x_j), W₀ with i.i.d. N(0, scale²) entries: the model can
    represent it exactly (realizable), at any d. ``logits``: p_j = softmax(scale · g_j), g_j i.i.d.
    N(0, I_s): one p(0) for every d, realizable when X has rank c (d ≥ c) and not below.
    The others are the statistical toolkit's families, one independent draw per context (with
    support < vocab they put zeros no softmax reaches: the fit approaches them only as λ → 0).
    """
    c = embeddings.n_contexts
    if family == "softmax":
        w0 = scale * rng.standard_normal((vocab, embeddings.dim))
        return softmax(embeddings.x @ w0.T)
    if family == "logits":
        return softmax(scale * rng.standard_normal((c, vocab)))
    support = vocab if support is None else support
    rows = []
    for _ in range(c):
        if family == "target":
            rows.append(target_distribution(vocab, support, S0, seed=rng))
        elif family == "zipf":
            rows.append(zipf_distribution(vocab, zipf_exponent, support=support))
        elif family == "dirichlet":
            rows.append(dirichlet_distribution(vocab, dirichlet_alpha, support=support, seed=rng))
        elif family == "uniform":
            rows.append(uniform_distribution(vocab, support=support))
        else:
            raise ValueError(f"The 'family' parameter of functional must be one of "
                             f"{sorted(P0_FAMILIES)}. Got {family!r} instead.")
    return np.stack(rows)
