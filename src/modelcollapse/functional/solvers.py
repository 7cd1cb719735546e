"""Batched fits of the softmax model (paper eq. 1), every run with its own parameters.

The objective of a run, given its training counts N (contexts × vocab) at generation m, is

    F(B) = −(1/M) Σ_j Σ_i N_ji log softmax(B x̃_j)_i + (λ/2) ‖B‖²,      M = Σ_j n_j,

the mean cross-entropy of eq. 1 over the run's M samples (n_j of them in context j) plus weight
decay, in the reduced coordinates of :mod:`.model` (B = W V, x̃_j = V^T x_j). It depends on the
data only through N. Gradient and Hessian-vector product (P = softmax(B X̃^T), rows per token):

    ∇F = (1/M) Σ_j (n_j p_j − N_j) x̃_j^T + λ B,
    H[V] = (1/M) Σ_j n_j (diag p_j − p_j p_jᵀ)(V x̃_j) x̃_j^T + λ V.

Tensors are (runs, vocab, contexts) for logits and counts and (runs, vocab, rank) for B, so that
a product with X̃ is one batched matmul.

Solvers (all stop per run, at a tolerance on the scaled gradient, see :func:`scaled_gradient`):

* ``newton`` — Newton–CG: per run, the Newton system is solved by conjugate gradients
  preconditioned with the Hessian's blocks per reduced coordinate k, each diagonal minus rank
  one and inverted by Sherman–Morrison (exact when the contexts do not interact: one-hot
  embeddings, where CG ends in one step); Armijo backtracking, and step doubling while the
  objective keeps falling (with λ = 0 an unobserved token's logit heads to −∞ about one unit
  per Newton step; doubling covers that distance in a few steps). Runs that converge leave the
  batch; warm starts from the previous generation's B.
* ``lbfgs`` — torch's L-BFGS (strong Wolfe line search) over all runs' parameters jointly, from
  zero: the simple baseline; the runs' objectives add up, so the joint optimum is every run's.
* ``gd`` — a fixed number of full-batch gradient steps of size 1/L from B = 0 (L bounds the
  Hessian): early stopping, which keeps every logit bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["SOLVERS", "FitStats", "LogitObjective", "SoftmaxObjective", "fit",
           "scaled_gradient"]

SOLVERS = ("auto", "newton", "lbfgs", "gd")
#: Largest entry of a Newton step before the line search, in logit units (a trust region).
MAX_STEP = 10.0


@dataclass
class FitStats:
    """What one batched fit cost: Newton (or L-BFGS) iterations of the slowest run, passes
    over the data (objective or Hessian-vector evaluations, summed over the active runs and
    divided by the batch size: cost in whole-batch passes), and runs not converged."""

    iterations: int = 0
    passes: float = 0.0
    unconverged: int = 0


class SoftmaxObjective:
    """F of each run (module docstring): ``xt`` (contexts, rank), ``counts`` (runs, vocab,
    contexts) as float64 tensors, ``lam`` the weight decay."""

    def __init__(self, xt: torch.Tensor, counts: torch.Tensor, lam: float):
        self.xt, self.counts, self.lam = xt, counts, lam
        self.n = counts.sum(dim=1, keepdim=True)  # (runs, 1, contexts)
        self.total = self.n.sum(dim=2, keepdim=True)  # (runs, 1, 1): M
        self.xt2 = xt * xt

    def subset(self, index: torch.Tensor) -> SoftmaxObjective:
        return SoftmaxObjective(self.xt, self.counts[index], self.lam)

    def logits(self, b: torch.Tensor) -> torch.Tensor:
        return b @ self.xt.T  # (runs, vocab, contexts)

    def value(self, b: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(self.logits(b), dim=1)
        loss = -(self.counts * logp).sum(dim=(1, 2)) / self.total[:, 0, 0]
        return loss + 0.5 * self.lam * (b * b).sum(dim=(1, 2))

    def value_grad(self, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """F (runs,), ∇F (runs, vocab, rank) and P (runs, vocab, contexts)."""
        logp = torch.log_softmax(self.logits(b), dim=1)
        p = logp.exp()
        loss = -(self.counts * logp).sum(dim=(1, 2)) / self.total[:, 0, 0]
        value = loss + 0.5 * self.lam * (b * b).sum(dim=(1, 2))
        grad = ((self.n * p - self.counts) @ self.xt) / self.total + self.lam * b
        return value, grad, p

    def hvp(self, p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """H[v] at the point whose probabilities are ``p``."""
        pu = p * self.logits(v)
        hz = self.n * (pu - p * pu.sum(dim=1, keepdim=True))
        return (hz @ self.xt) / self.total + self.lam * v

    def preconditioner(self, p: torch.Tensor):
        """v ↦ approximate H⁻¹ v, from the Hessian's block of each reduced coordinate (see
        :meth:`_column_preconditioner`). (Working in the logits instead, whose weight decay
        is tr(Z K⁻¹ Zᵀ), is no help once λ > 0: for square Gaussian embeddings K = X Xᵀ has
        eigenvalues down to ~10⁻⁵, so K⁻¹ makes that problem stiff — 893 passes a generation
        at d = c = 81, λ = 1e-2, against 14 here.)"""
        return self._column_preconditioner(p)

    def _column_preconditioner(self, p: torch.Tensor):
        """v ↦ approximate H⁻¹ v from the Hessian's block of each reduced coordinate k,
        (1/M) Σ_j n_j x̃_jk² (diag p_j − p_j p_jᵀ) + λ I, taken as D_k − u_k u_kᵀ with
        D_k = diag(Σ_j w_jk p_j) + λ, u_k = Σ_j w_jk p_j / √(Σ_j w_jk), w_jk = n_j x̃_jk²/M
        (exact when one context feeds coordinate k), inverted by Sherman–Morrison."""
        w = (self.n.transpose(1, 2) * self.xt2) / self.total  # (runs, contexts, rank)
        d0 = p @ w  # (runs, vocab, rank)
        sw = w.sum(dim=1, keepdim=True).clamp_min(1e-300)  # (runs, 1, rank)
        tiny = 1e-12 * d0.amax(dim=1, keepdim=True).clamp_min(1e-300)
        d = d0 + self.lam + tiny
        u = d0 / sw.sqrt()
        du = u / d
        # 1 − uᵀD⁻¹u is 0 for λ = 0 (the softmax's shift): keep the correction finite.
        den = (1.0 - (u * du).sum(dim=1, keepdim=True)).clamp_min(1e-6)

        def apply(v: torch.Tensor) -> torch.Tensor:
            return v / d + du * ((du * v).sum(dim=1, keepdim=True) / den)

        return apply

    def smoothness(self) -> torch.Tensor:
        """L (runs,): an upper bound on the Hessian's largest eigenvalue, (1/2M) λ_max(Σ_j n_j
        x̃_j x̃_jᵀ) + λ (the softmax's curvature is at most 1/2)."""
        gram = (self.xt.T * self.n) @ self.xt  # (runs, rank, rank)
        top = torch.linalg.eigvalsh(gram)[..., -1]
        return top / (2.0 * self.total[:, 0, 0]) + self.lam


class LogitObjective(SoftmaxObjective):
    """F in the logits Z = B X̃ᵀ (runs, vocab, contexts) themselves, for embeddings of rank c
    (d ≥ c): X̃ is then invertible, B = Z X̃^{-T} and ‖B‖² = tr(Z K⁻¹ Zᵀ), K = X̃ X̃ᵀ = X Xᵀ. The
    cross-entropy separates by context (no product with X̃ at all); only the weight decay
    couples contexts, through K⁻¹. Same optimum as :class:`SoftmaxObjective` (a bijective
    change of variables of a convex problem)."""

    def __init__(self, xt: torch.Tensor, counts: torch.Tensor, lam: float,
                 kinv: torch.Tensor | None = None):
        super().__init__(xt, counts, lam)
        if kinv is None:
            kinv = torch.cholesky_inverse(torch.linalg.cholesky(xt @ xt.T))
        self.kinv = kinv
        self.kdiag = torch.diagonal(kinv)

    def subset(self, index: torch.Tensor) -> LogitObjective:
        return LogitObjective(self.xt, self.counts[index], self.lam, self.kinv)

    def logits(self, b: torch.Tensor) -> torch.Tensor:
        return b

    def _penalty(self, b: torch.Tensor) -> torch.Tensor:
        return b @ self.kinv if self.lam else torch.zeros_like(b)

    def value(self, b: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(b, dim=1)
        loss = -(self.counts * logp).sum(dim=(1, 2)) / self.total[:, 0, 0]
        if not self.lam:
            return loss
        return loss + 0.5 * self.lam * (b * self._penalty(b)).sum(dim=(1, 2))

    def value_grad(self, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logp = torch.log_softmax(b, dim=1)
        p = logp.exp()
        loss = -(self.counts * logp).sum(dim=(1, 2)) / self.total[:, 0, 0]
        grad = (self.n * p - self.counts) / self.total
        if self.lam:
            pb = self._penalty(b)
            loss = loss + 0.5 * self.lam * (b * pb).sum(dim=(1, 2))
            grad = grad + self.lam * pb
        return loss, grad, p

    def hvp(self, p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        pv = p * v
        out = self.n * (pv - p * pv.sum(dim=1, keepdim=True)) / self.total
        return out + self.lam * self._penalty(v) if self.lam else out

    def preconditioner(self, p: torch.Tensor):
        """Per context, (n_j/M)(diag p_j − p_j p_jᵀ) + λ (K⁻¹)_jj I by Sherman–Morrison:
        exact for λ = 0 (on the complement of the softmax's shifts)."""
        w = self.n / self.total
        d0 = w * p
        tiny = 1e-12 * d0.amax(dim=1, keepdim=True).clamp_min(1e-300)
        d = d0 + self.lam * self.kdiag + tiny
        du = (w.sqrt() * p) / d
        den = (1.0 - (w.sqrt() * p * du).sum(dim=1, keepdim=True)).clamp_min(1e-6)

        def apply(v: torch.Tensor) -> torch.Tensor:
            return v / d + du * ((du * v).sum(dim=1, keepdim=True) / den)

        return apply


def scaled_gradient(grad: torch.Tensor, n_contexts: int) -> torch.Tensor:
    """c ‖∇F‖∞ per run: for one-hot contexts with n samples each, c ∂F/∂B_ij = p_ji − N_ji/n (+
    λ c B_ij), so a tolerance on it is a tolerance on the fitted probabilities themselves."""
    return n_contexts * grad.abs().amax(dim=(1, 2))


def fit(objective: SoftmaxObjective, start: torch.Tensor, *, solver: str = "newton",
        tol: float = 1e-8, max_iter: int = 200, steps: int = 100) -> tuple[torch.Tensor,
                                                                            FitStats]:
    """Fit every run of ``objective`` from ``start`` (runs, vocab, rank); returns B and the
    cost. ``tol``: on :func:`scaled_gradient`; ``steps``: of ``gd``."""
    if solver in ("auto", "newton"):
        return _newton(objective, start, tol, max_iter)
    if solver == "lbfgs":
        return _lbfgs(objective, start, tol, max_iter)
    if solver == "gd":
        return _gd(objective, steps)
    raise ValueError(f"The 'solver' parameter of functional must be one of {sorted(SOLVERS)}. "
                     f"Got {solver!r} instead.")


def _pcg(obj: SoftmaxObjective, p: torch.Tensor, rhs: torch.Tensor, rtol: torch.Tensor,
         max_iter: int, stats: FitStats, batch: int) -> torch.Tensor:
    """Preconditioned conjugate gradients on H x = rhs, per run, to ‖r‖ ≤ rtol ‖rhs‖."""
    precondition = obj.preconditioner(p)
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    z = precondition(r)
    direction = z.clone()
    rz = (r * z).sum(dim=(1, 2))
    goal = rtol * rhs.flatten(1).norm(dim=1)
    running = torch.ones_like(rz, dtype=torch.bool)
    for _ in range(max_iter):
        hd = obj.hvp(p, direction)
        stats.passes += rhs.shape[0] / batch
        curvature = (direction * hd).sum(dim=(1, 2))
        ok = running & (curvature > 0)
        alpha = torch.where(ok, rz / torch.where(ok, curvature, 1.0), 0.0)[:, None, None]
        x = x + alpha * direction
        r = r - alpha * hd
        running = ok & (r.flatten(1).norm(dim=1) > goal)
        if not running.any():
            break
        z = precondition(r)
        rz_new = (r * z).sum(dim=(1, 2))
        beta = torch.where(running, rz_new / torch.where(rz != 0, rz, 1.0), 0.0)[:, None, None]
        direction = torch.where(running[:, None, None], z + beta * direction, direction)
        rz = torch.where(running, rz_new, rz)
    return x


def _newton(objective: SoftmaxObjective, start: torch.Tensor, tol: float,
            max_iter: int) -> tuple[torch.Tensor, FitStats]:
    b = start.clone()
    batch = b.shape[0]
    n_contexts = objective.xt.shape[0]
    stats = FitStats()
    active = torch.arange(batch, device=b.device)
    obj = objective
    for iteration in range(max_iter + 1):
        ba = b[active]
        value, grad, p = obj.value_grad(ba)
        stats.passes += len(active) / batch
        gnorm = scaled_gradient(grad, n_contexts)
        left = gnorm > tol
        if not left.all():
            active, ba, value, grad, p, gnorm = (t[left] for t in
                                                 (active, ba, value, grad, p, gnorm))
            obj = objective.subset(active)
        if len(active) == 0 or iteration == max_iter:
            break
        stats.iterations = iteration + 1
        rtol = torch.clamp(gnorm.sqrt(), max=0.1)
        step = _pcg(obj, p, -grad, rtol, 50, stats, batch)
        # The optimum has logits (and B) of mean zero over tokens: the softmax ignores that
        # mean, and the weight decay sets it to 0. Keep steps there (λ = 0 leaves it free, and
        # the preconditioner, singular along it, would let rounding grow in it), and cap a
        # step's entries at MAX_STEP logits (far from the optimum a Newton step of the softmax
        # overshoots by the ratio of probabilities).
        step = step - step.mean(dim=1, keepdim=True)
        size = step.abs().amax(dim=(1, 2))
        step = step * torch.clamp(MAX_STEP / size.clamp_min(1e-300), max=1.0)[:, None, None]
        slope = (grad * step).sum(dim=(1, 2))
        # Not a descent direction (rounding at the end): fall back on the gradient.
        bad = ~(slope < 0)
        if bad.any():
            step = torch.where(bad[:, None, None], -grad, step)
            slope = torch.where(bad, -(grad * grad).sum(dim=(1, 2)), slope)
        alpha = torch.ones_like(value)
        for _ in range(40):  # Armijo backtracking, per run
            trial = obj.value(ba + alpha[:, None, None] * step)
            stats.passes += len(active) / batch
            # Near the optimum the predicted decrease is below the rounding of F: the Newton
            # step is then taken as it is.
            fine = ((trial <= value + 1e-4 * alpha * slope)
                    | (-slope <= 1e-13 * (1.0 + value.abs())))
            if fine.all():
                break
            alpha = torch.where(fine, alpha, 0.5 * alpha)
        best = trial
        grow = alpha == 1.0
        for _ in range(8):  # step doubling while the objective keeps falling
            if not grow.any():
                break
            bigger = torch.where(grow, 2.0 * alpha, alpha)
            trial = obj.value(ba + bigger[:, None, None] * step)
            stats.passes += len(active) / batch
            better = grow & (trial < best) & (trial <= value + 1e-4 * bigger * slope)
            alpha = torch.where(better, bigger, alpha)
            best = torch.where(better, trial, best)
            grow = better
        b[active] = ba + alpha[:, None, None] * step
    stats.unconverged = len(active)
    return b, stats


def _lbfgs(objective: SoftmaxObjective, start: torch.Tensor, tol: float,
           max_iter: int) -> tuple[torch.Tensor, FitStats]:
    n_contexts = objective.xt.shape[0]
    b = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([b], lr=1.0, max_iter=max_iter * 10,
                                  tolerance_grad=tol / n_contexts, tolerance_change=0.0,
                                  history_size=20, line_search_fn="strong_wolfe")
    stats = FitStats()

    def closure():
        optimizer.zero_grad()
        value, grad, _ = objective.value_grad(b.detach())
        b.grad = grad
        stats.passes += 1
        return value.sum()

    optimizer.step(closure)
    b = b.detach()
    _, grad, _ = objective.value_grad(b)
    stats.iterations = optimizer.state[optimizer.param_groups[0]["params"][0]].get("n_iter", 0)
    stats.unconverged = int((scaled_gradient(grad, n_contexts) > tol).sum())
    return b, stats


def _gd(objective: SoftmaxObjective, steps: int) -> tuple[torch.Tensor, FitStats]:
    rank = objective.xt.shape[1]
    runs, vocab = objective.counts.shape[:2]
    b = torch.zeros((runs, vocab, rank), dtype=objective.xt.dtype, device=objective.xt.device)
    rate = (1.0 / objective.smoothness())[:, None, None]
    for _ in range(steps):
        p = torch.softmax(objective.logits(b), dim=1)
        grad = ((objective.n * p - objective.counts) @ objective.xt) / objective.total
        b = b - rate * (grad + objective.lam * b)
    return b, FitStats(iterations=steps, passes=float(steps))
