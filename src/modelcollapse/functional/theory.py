"""What has a closed form for the softmax model on context embeddings, to first order in 1/n.

Notation: contexts j with reduced embeddings x̃_j (:mod:`.model`), n_j = n samples each,
M = Σ_j n_j, θ = B (vocab × rank), F the objective of :mod:`.solvers`; A_j(q) = diag q_j −
q_j q_jᵀ (the softmax's Jacobian, and the multinomial covariance of one sample).

* **Best in class** (the functional part of the error). With infinite data the counts are
  n_j p_j, and the fit is q* = Φ(p): the population optimum of F (an M-projection of p on the
  model, shrunk by λ). ``‖q* − p(0)‖₁`` is the error no amount of data removes; it is 0 when
  p(0) is realizable and λ = 0 (family ``softmax``; family ``logits`` with d ≥ c).
* **First generation** (the statistical part, delta method / sandwich). With
  H = (1/M) Σ_j n_j A_j(q*) ⊗ x̃_j x̃_jᵀ + λ I and the score's covariance
  I = (1/M²) Σ_j n_j A_j(p) ⊗ x̃_j x̃_jᵀ, √n (θ̂ − θ*) → N(0, n H⁺ I H⁺), and
  p_j(1) − q*_j ≈ A_j(q*) (I_s ⊗ x̃_jᵀ)(θ̂ − θ*): covariance V_j per context. Then
  E‖p(1) − q*‖₂² ≈ Σ_j tr V_j and E‖p(1) − q*‖₁ ≈ √(2/π) Σ_ji √(V_j)_ii. One-hot
  embeddings with d = c and λ = 0 give V_j = A_j(p_j)/n: eq. 2's multinomial.
* **Linear noise recursion for σ_m** (fully synthetic). Write p(m) = p̄_m + δ_m with the
  deterministic path p̄_m = Φ(p̄_{m−1}), p̄_0 = p(0). To first order
  δ_m = DΦ(p̄_{m−1}) δ_{m−1} + ξ_m, Cov ξ_m = V(p̄_{m−1}), so
  C_m = DΦ C_{m−1} DΦᵀ + V and E σ_m ≈ ‖p̄_m‖₂² + tr C_m (per context), where
  DΦ_kj = A_k(q) (I ⊗ x̃_kᵀ) H⁺ (n_j/M)(I ⊗ x̃_j). For λ = 0 and p(0) in the model, Φ fixes
  p̄ and DΦ is a projection that V lives in: C_m = m V, E σ_m ≈ σ_0 + m tr V — eq. 6's
  1 − (1 − 1/n)^m (1 − S0) ≈ S0 + m (1 − S0)/n with (1 − S0) replaced by tr V ≤ 1 − S0.
  With λ > 0, Φ shrinks logits towards 0 (the uniform distribution): DΦ is a contraction and
  C_m tends to the solution of a Lyapunov equation, a plateau of σ_m instead of total
  collapse. The recursion holds while n tr C_m ≪ n (small noise); the collapse time T has no
  closed form here (for d < c the contexts' chains are coupled, and for λ > 0 there is no
  absorbing state).

Dense matrices of side vocab · rank: meant for small problems (≲ 2000 parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import Embeddings

__all__ = ["FirstGeneration", "best_in_class", "first_generation", "first_generation_covariance",
           "linear_noise_sigma"]


def _fit(embeddings: Embeddings, counts: np.ndarray, lam: float, tol: float = 1e-11
         ) -> np.ndarray:
    """The fit (runs, contexts, vocab) of counts (runs, contexts, vocab), floats allowed."""
    import torch

    from .solvers import LogitObjective, SoftmaxObjective, fit

    xt = torch.tensor(embeddings.reduced, dtype=torch.float64)
    tensor = torch.tensor(np.ascontiguousarray(counts.transpose(0, 2, 1)), dtype=torch.float64)
    c = embeddings.n_contexts
    if embeddings.rank == c:
        objective = LogitObjective(xt, tensor, lam)
        start = torch.zeros_like(tensor)
    else:
        objective = SoftmaxObjective(xt, tensor, lam)
        start = torch.zeros((tensor.shape[0], tensor.shape[1], embeddings.rank),
                            dtype=torch.float64)
    b, _ = fit(objective, start, solver="newton", tol=tol, max_iter=500)
    return torch.softmax(objective.logits(b), dim=1).transpose(1, 2).numpy()


def best_in_class(embeddings: Embeddings, p: np.ndarray, lam: float) -> np.ndarray:
    """q* = Φ(p) (contexts, vocab): the fit with infinite data (expected counts; n cancels
    out of the mean cross-entropy when every context has the same n)."""
    return _fit(embeddings, p[None] * 1.0, lam)[0]


def _jacobians(embeddings: Embeddings, q: np.ndarray) -> np.ndarray:
    """J_j = A_j(q) (I_s ⊗ x̃_jᵀ): (contexts, vocab, vocab · rank), θ flattened token-major."""
    xt = embeddings.reduced
    c, s = q.shape
    a = np.einsum("ji,ik->jik", q, np.eye(s)) - q[:, :, None] * q[:, None, :]
    return np.einsum("jik,jr->jikr", a, xt).reshape(c, s, s * xt.shape[1])


def _hessian(embeddings: Embeddings, q: np.ndarray, lam: float, weight: np.ndarray
             ) -> np.ndarray:
    """Σ_j w_j A_j(q) ⊗ x̃_j x̃_jᵀ + λ I (vocab · rank square)."""
    xt = embeddings.reduced
    s = q.shape[1]
    a = np.einsum("ji,ik->jik", q, np.eye(s)) - q[:, :, None] * q[:, None, :]
    h = np.einsum("j,jik,jr,jt->irkt", weight, a, xt, xt).reshape(s * xt.shape[1], -1)
    return h + lam * np.eye(h.shape[0])


def first_generation_covariance(embeddings: Embeddings, p: np.ndarray, lam: float, n: int,
                                q: np.ndarray | None = None) -> np.ndarray:
    """V_j (contexts, vocab, vocab): the covariance of p_j(1) fitted on n samples per context
    of p, to first order in 1/n (module docstring); ``q`` = Φ(p) if known."""
    c = p.shape[0]
    q = best_in_class(embeddings, p, lam) if q is None else q
    weight = np.full(c, 1.0 / c)  # n_j / M
    h_pinv = np.linalg.pinv(_hessian(embeddings, q, lam, weight), hermitian=True)
    score = _hessian(embeddings, p, 0.0, weight) / (c * n)  # (1/M²) Σ n_j A_j(p) ⊗ x̃x̃ᵀ
    cov = h_pinv @ score @ h_pinv
    jac = _jacobians(embeddings, q)
    return np.einsum("jia,ab,jkb->jik", jac, cov, jac)


def linear_noise_sigma(embeddings: Embeddings, p0: np.ndarray, lam: float, n: int,
                       generations: int) -> dict[str, np.ndarray]:
    """The small-noise recursion of the fully synthetic loop (module docstring), m = 0 … G:
    ``path`` p̄_m (G+1, contexts, vocab), ``trace`` tr C_m per context (G+1, contexts) =
    E‖p_j(m) − p̄_{m,j}‖₂², and ``sigma`` ‖p̄_m‖₂² + tr C_m per context (G+1, contexts)."""
    c, s = p0.shape
    weight = np.full(c, 1.0 / c)
    path = [p0]
    cov = np.zeros((c * s, c * s))
    traces = [np.zeros(c)]
    for _ in range(generations):
        prev = path[-1]
        q = best_in_class(embeddings, prev, lam)
        h_pinv = np.linalg.pinv(_hessian(embeddings, q, lam, weight), hermitian=True)
        jac = _jacobians(embeddings, q)  # (c, s, P)
        big = jac.reshape(c * s, -1)
        # DΦ = J H⁺ (1/c) Eᵀ, with Eᵀ = [(I ⊗ x̃_j)]_j: E_j = J_j without A_j's factor.
        e = np.einsum("ik,jr->jikr", np.eye(s), embeddings.reduced).reshape(c * s, -1)
        dphi = big @ h_pinv @ e.T / c
        score = _hessian(embeddings, prev, 0.0, weight) / (c * n)
        noise = big @ h_pinv @ score @ h_pinv @ big.T
        cov = dphi @ cov @ dphi.T + noise
        path.append(q)
        traces.append(np.trace(cov.reshape(c, s, c, s), axis1=1, axis2=3).diagonal().copy())
    path_arr = np.stack(path)
    trace = np.stack(traces)
    return {"path": path_arr, "trace": trace,
            "sigma": np.einsum("mjs,mjs->mj", path_arr, path_arr) + trace}


@dataclass(frozen=True)
class FirstGeneration:
    """‖p(1) − p(0)‖₁ and its parts, mean over contexts (and runs), with standard errors:
    ``total`` E‖p(1) − p(0)‖₁, ``functional`` ‖q* − p(0)‖₁ (no randomness), ``statistical``
    E‖p(1) − q*‖₁."""

    total: float
    total_se: float
    functional: float
    statistical: float
    statistical_se: float


def first_generation(embeddings: Embeddings, p0: np.ndarray, lam: float, n: int, runs: int,
                     rng: np.random.Generator) -> FirstGeneration:
    """Simulated first-generation errors of ``runs`` fits on n fresh samples per context."""
    from .history import draw_counts

    q = best_in_class(embeddings, p0, lam)
    c, s = p0.shape
    counts = draw_counts(np.tile(p0, (runs, 1)), n, rng).reshape(runs, c, s)
    p1 = _fit(embeddings, counts.astype(np.float64), lam, tol=1e-8)
    total = np.abs(p1 - p0).sum(axis=2).mean(axis=1)
    stat = np.abs(p1 - q).sum(axis=2).mean(axis=1)

    def se(v: np.ndarray) -> float:
        return float(v.std(ddof=1) / np.sqrt(runs)) if runs > 1 else float("nan")

    return FirstGeneration(float(total.mean()), se(total),
                           float(np.abs(q - p0).sum(axis=1).mean()), float(stat.mean()),
                           se(stat))
