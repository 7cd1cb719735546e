import json

import numpy as np
import pytest

from modelcollapse.distributions import (
    PAPER_FIG2_PAIRS,
    PAPER_FIG4_PAIRS,
    dirichlet_distribution,
    load_distribution,
    random_context_distributions,
    sigma,
    support_size,
    target_distribution,
    uniform_distribution,
    zipf_distribution,
)


@pytest.mark.parametrize("S0, support", PAPER_FIG2_PAIRS + PAPER_FIG4_PAIRS)
def test_target_distribution_hits_S0_and_support_exactly(S0, support):
    p = target_distribution(600, support, S0, seed=11)
    assert p.shape == (600,)
    assert abs(sigma(p) - S0) <= 1e-9
    assert support_size(p) == support
    assert abs(p.sum() - 1) < 1e-12 and p.min() >= 0


def test_target_distribution_edges():
    p = target_distribution(10, 4, 0.25, seed=0)  # S0 = 1/support: uniform on the support
    assert np.allclose(p[p > 0], 0.25)
    dirac = target_distribution(10, 1, 1.0, seed=0)
    assert dirac.max() == 1.0 and support_size(dirac) == 1


def test_target_distribution_is_seeded():
    a = target_distribution(600, 52, 0.1, seed=5)
    assert np.array_equal(a, target_distribution(600, 52, 0.1, seed=5))
    assert not np.array_equal(a, target_distribution(600, 52, 0.1, seed=6))


@pytest.mark.parametrize("kwargs, message", [
    ({"vocab": 600, "support": 52, "S0": 0.001}, "The 'S0' parameter of target_distribution"),
    ({"vocab": 600, "support": 700, "S0": 0.1}, "The 'support' parameter of target_distribution"),
    ({"vocab": 600, "support": 5, "S0": 1.0}, "can be 1 only when support is 1"),
    ({"vocab": 0, "support": 1, "S0": 1.0}, "The 'vocab' parameter"),
])
def test_target_distribution_rejects_infeasible(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        target_distribution(**kwargs, seed=0)


def test_families():
    z = zipf_distribution(100, 1.2, support=50)
    assert support_size(z) == 50 and np.all(np.diff(z[:50]) < 0)
    d = dirichlet_distribution(100, 0.5, support=30, seed=1)
    assert support_size(d) == 30 and abs(d.sum() - 1) < 1e-12
    u = uniform_distribution(100, support=20)
    assert abs(sigma(u) - 1 / 20) < 1e-15
    ctx = random_context_distributions(81, 3, seed=0)
    assert ctx.shape == (81, 3) and np.allclose(ctx.sum(axis=1), 1)


def test_load_distribution_all_formats(tmp_path):
    p = target_distribution(20, 6, 0.3, seed=3)
    np.save(tmp_path / "p.npy", p)
    (tmp_path / "p.txt").write_text(" ".join(repr(float(x)) for x in p))
    (tmp_path / "p.csv").write_text(",".join(repr(float(x)) for x in p))
    (tmp_path / "p.json").write_text(json.dumps({"p": p.tolist()}))
    (tmp_path / "q.json").write_text(json.dumps(p.tolist()))
    for name in ("p.npy", "p.txt", "p.csv", "p.json", "q.json"):
        assert np.allclose(load_distribution(tmp_path / name), p, atol=1e-15), name
    two = np.stack([p, p[::-1]])
    (tmp_path / "ctx.csv").write_text("\n".join(",".join(repr(float(x)) for x in r) for r in two))
    assert load_distribution(tmp_path / "ctx.csv").shape == (2, 20)


@pytest.mark.parametrize("content, message", [
    ("0.5 0.6", "must sum to 1"),
    ("0.5 -0.1 0.6", "must be non-negative"),
    ("0.5 nan 0.5", "must contain only finite numbers"),
    ("a b", "must be a readable file of numbers"),
])
def test_load_distribution_rejects_invalid(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_distribution(path)


def test_load_distribution_rejects_missing_and_unknown(tmp_path):
    with pytest.raises(ValueError, match="must name an existing file"):
        load_distribution(tmp_path / "nope.npy")
    (tmp_path / "p.bin").write_text("1")
    with pytest.raises(ValueError, match=r"must be a \.npy, \.txt"):
        load_distribution(tmp_path / "p.bin")
