"""The softmax model on context embeddings: exactness against the count model (eq. 2), the
solvers against each other, and the first-order theory against simulation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from modelcollapse import functional  # noqa: E402
from modelcollapse.functional.history import draw_counts  # noqa: E402
from modelcollapse.functional.solvers import (  # noqa: E402
    LogitObjective,
    SoftmaxObjective,
    fit,
    scaled_gradient,
)
from modelcollapse.functional.theory import (  # noqa: E402
    best_in_class,
    first_generation_covariance,
    linear_noise_sigma,
)
from modelcollapse.theory import collapse_time_law  # noqa: E402


def _counts(p0, runs, n, seed):
    rng = np.random.default_rng(seed)
    c, s = p0.shape
    return draw_counts(np.tile(p0, (runs, 1)), n, rng).reshape(runs, c, s)


def _tensor(counts):
    return torch.tensor(np.ascontiguousarray(counts.transpose(0, 2, 1)), dtype=torch.float64)


def test_onehot_fit_is_the_empirical_frequency():
    """Eq. 2: one-hot contexts, d = c, λ = 0: the fit is N/n to the solver's tolerance, on
    observed tokens and (p → 0) on the others."""
    rng = np.random.default_rng(0)
    emb = functional.make_embeddings("onehot", 6, 6, rng)
    p0 = functional.make_p0("logits", emb, 7, rng)
    counts = _counts(p0, 30, 10, 1)
    tol = 1e-9
    for cls in (SoftmaxObjective, LogitObjective):
        obj = cls(torch.tensor(emb.reduced), _tensor(counts), 0.0)
        b, stats = fit(obj, torch.zeros(30, 7, 6, dtype=torch.float64), tol=tol)
        p = torch.softmax(obj.logits(b), dim=1).transpose(1, 2).numpy()
        assert stats.unconverged == 0
        assert np.max(np.abs(p - counts / 10)) <= tol


def test_two_solvers_agree_on_the_convex_optimum():
    """Newton–CG and L-BFGS, Gaussian embeddings with d < c, λ > 0: F is λ-strongly convex,
    so ‖θ_a − θ_b‖₂ ≤ (‖∇F(θ_a)‖₂ + ‖∇F(θ_b)‖₂) / λ, the bound checked here."""
    rng = np.random.default_rng(3)
    emb = functional.make_embeddings("gaussian", 10, 4, rng)
    p0 = functional.make_p0("logits", emb, 6, rng)
    lam = 1e-2
    obj = SoftmaxObjective(torch.tensor(emb.reduced), _tensor(_counts(p0, 8, 10, 4)), lam)
    start = torch.zeros(8, 6, emb.rank, dtype=torch.float64)
    b_newton, s1 = fit(obj, start, solver="newton", tol=1e-10)
    b_lbfgs, _ = fit(obj, start, solver="lbfgs", tol=1e-10, max_iter=500)
    assert s1.unconverged == 0
    gaps = []
    for b in (b_newton, b_lbfgs):
        _, grad, _ = obj.value_grad(b)
        gaps.append(grad.flatten(1).norm(dim=1))
    distance = (b_newton - b_lbfgs).flatten(1).norm(dim=1)
    assert torch.all(distance <= (gaps[0] + gaps[1]) / lam + 1e-12)
    assert float(distance.max()) < 1e-5


def test_logit_and_weight_coordinates_agree():
    """Rank c: the fit in the logits (LogitObjective) and in B give one optimum."""
    rng = np.random.default_rng(5)
    emb = functional.make_embeddings("gaussian", 5, 9, rng)
    p0 = functional.make_p0("logits", emb, 4, rng)
    counts = _tensor(_counts(p0, 6, 20, 6))
    xt = torch.tensor(emb.reduced)
    for lam in (0.0, 1e-2):
        a = SoftmaxObjective(xt, counts, lam)
        z = LogitObjective(xt, counts, lam)
        ba, _ = fit(a, torch.zeros(6, 4, emb.rank, dtype=torch.float64), tol=1e-10)
        bz, _ = fit(z, torch.zeros(6, 4, 5, dtype=torch.float64), tol=1e-10)
        pa = torch.softmax(a.logits(ba), 1)
        pz = torch.softmax(bz, 1)
        assert float((pa - pz).abs().max()) < 1e-7


def test_gd_is_early_stopping_from_zero():
    """Solver gd: k steps of size 1/L from 0; more steps, lower objective, bounded logits."""
    rng = np.random.default_rng(7)
    emb = functional.make_embeddings("gaussian", 6, 3, rng)
    p0 = functional.make_p0("logits", emb, 5, rng)
    obj = SoftmaxObjective(torch.tensor(emb.reduced), _tensor(_counts(p0, 4, 10, 8)), 0.0)
    values = [obj.value(fit(obj, None, solver="gd", steps=k)[0]) for k in (1, 10, 100)]
    assert torch.all(values[0] > values[1]) and torch.all(values[1] > values[2])


def test_onehot_collapse_time_matches_the_count_model():
    """Onehot, d = c, λ = 0 to tolerance: mean collapse time within 4 se of the statistical
    loop's exact E[T] (collapse_time_law) on the same p(0) and n — with the Newton solver
    fitting every generation (``auto`` would take the exact limit instead)."""
    res = functional.run({"contexts": 4, "vocab": 5, "dim": 4, "embedding": "onehot",
                          "runs": 150, "generations": 120, "tol": 1e-9, "solver": "newton"},
                         seed=1, progress=False)
    times = res.data["collapse_time"].values  # (run, context), independent contexts
    law = collapse_time_law(res.data["p0"].values, n=10)
    assert np.isnan(times).sum() <= 1
    per_context = np.nanmean(times, axis=0)
    var = np.nanvar(times, axis=0, ddof=1) / np.sum(~np.isnan(times), axis=0)
    z = (per_context.mean() - np.mean(law.mean)) / np.sqrt(var.sum() / 16)
    assert abs(z) < 4
    # The Result is the statistical loop's: σ at m = 0 is S0, the absorbed runs stay counted.
    sigma, _ = res.mean("sigma")
    assert sigma[0] == pytest.approx(np.mean(np.sum(res.data["p0"].values ** 2, axis=1)))
    assert (res.data["count"].values == 150).all()


def test_realizable_p0_is_recovered_with_a_large_sample():
    """Family softmax (p(0) in the model), λ = 0: the best in class is p(0) itself, and p(1)
    from n = 10⁵ samples per context is within 4 standard deviations (first-order theory) of it
    in ‖·‖₂²."""
    rng = np.random.default_rng(11)
    emb = functional.make_embeddings("gaussian", 6, 3, rng)
    p0 = functional.make_p0("softmax", emb, 5, rng, scale=1.0)
    q = best_in_class(emb, p0, 0.0)
    assert np.max(np.abs(q - p0)) < 1e-9
    n = 10**5
    counts = _counts(p0, 1, n, 12)
    obj = SoftmaxObjective(torch.tensor(emb.reduced), _tensor(counts.astype(float)), 0.0)
    b, _ = fit(obj, torch.zeros(1, 5, emb.rank, dtype=torch.float64), tol=1e-10)
    p1 = torch.softmax(obj.logits(b), 1).transpose(1, 2).numpy()[0]
    v = first_generation_covariance(emb, p0, 0.0, n)
    assert np.sum((p1 - p0) ** 2) < np.trace(v, axis1=1, axis2=2).sum() + 4 * np.sqrt(
        2 * np.sum(v * v))


def test_first_generation_covariance_onehot_is_multinomial():
    rng = np.random.default_rng(2)
    emb = functional.make_embeddings("onehot", 3, 3, rng)
    p0 = functional.make_p0("logits", emb, 4, rng)
    v = first_generation_covariance(emb, p0, 0.0, 10)
    expected = (np.einsum("ji,ik->jik", p0, np.eye(4)) - p0[:, :, None] * p0[:, None, :]) / 10
    assert np.allclose(v, expected, atol=1e-9)


@pytest.mark.parametrize("lam", [0.0, 0.05])
def test_first_generation_covariance_matches_simulation(lam):
    """E‖p(1) − q*‖₂² against Σ_j tr V_j, Gaussian d < c (not realizable for family
    logits): |z| < 4 from the simulated standard error."""
    rng = np.random.default_rng(21)
    emb = functional.make_embeddings("gaussian", 6, 3, rng)
    p0 = functional.make_p0("logits", emb, 4, rng)
    n, runs = 4000, 400
    q = best_in_class(emb, p0, lam)
    counts = _counts(p0, runs, n, 22).astype(float)
    obj = SoftmaxObjective(torch.tensor(emb.reduced), _tensor(counts), lam)
    b, _ = fit(obj, torch.zeros(runs, 4, emb.rank, dtype=torch.float64), tol=1e-10)
    p1 = torch.softmax(obj.logits(b), 1).transpose(1, 2).numpy()
    dev = np.sum((p1 - q) ** 2, axis=(1, 2))
    predicted = np.trace(first_generation_covariance(emb, p0, lam, n, q=q), axis1=1,
                         axis2=2).sum()
    z = (dev.mean() - predicted) / (dev.std(ddof=1) / np.sqrt(runs))
    assert abs(z) < 4


def test_linear_noise_recursion_matches_simulation():
    """Fully synthetic, λ > 0, Gaussian d < c: E‖p(m) − p̄_m‖₂² for m = 1 … 3 against the
    small-noise recursion's tr C_m (|z| < 4 per generation), with a slow, obvious reference
    loop (draw, fit from zero, repeat)."""
    rng = np.random.default_rng(31)
    emb = functional.make_embeddings("gaussian", 5, 3, rng)
    p0 = functional.make_p0("logits", emb, 4, rng)
    lam, n, runs, G = 0.02, 3000, 300, 3
    theory = linear_noise_sigma(emb, p0, lam, n, G)
    draws = np.random.default_rng(32)
    p = np.broadcast_to(p0, (runs, *p0.shape))
    xt = torch.tensor(emb.reduced)
    for m in range(1, G + 1):
        counts = draw_counts(p.reshape(-1, 4), n, draws).reshape(runs, 5, 4).astype(float)
        obj = SoftmaxObjective(xt, _tensor(counts), lam)
        b, _ = fit(obj, torch.zeros(runs, 4, emb.rank, dtype=torch.float64), tol=1e-10)
        p = torch.softmax(obj.logits(b), 1).transpose(1, 2).numpy()
        dev = np.sum((p - theory["path"][m]) ** 2, axis=(1, 2))
        z = (dev.mean() - theory["trace"][m].sum()) / (dev.std(ddof=1) / np.sqrt(runs))
        assert abs(z) < 4, (m, z)


def test_scaled_gradient_units():
    grad = torch.zeros(2, 3, 4, dtype=torch.float64)
    grad[1, 2, 3] = -0.5
    assert scaled_gradient(grad, 4).tolist() == [0.0, 2.0]
