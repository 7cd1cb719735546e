"""The diffusion prediction of E[T] and its finite-n correction (theory.diffusion) against the
exact law of T (theory.genealogy) and against simulation."""

from __future__ import annotations

import numpy as np
import pytest

from modelcollapse import simulate
from modelcollapse.distributions import PAPER_FIG2_PAIRS, target_distribution, uniform_distribution
from modelcollapse.scenarios import FullySynthetic
from modelcollapse.theory import collapse_time_law, collapse_time_prediction, diffusion

FIG2 = [target_distribution(600, sup, S0, seed=0) for S0, sup in PAPER_FIG2_PAIRS]
SKEWED = [np.array([0.5, 0.5]), np.array([0.9, 0.1]), np.array([0.99, 0.01]),
          np.array([0.98, 0.01, 0.01]), np.array([0.7, 0.2, 0.1])]


def test_littler_formula_and_its_two_allele_case():
    p = np.array([0.3, 0.7])
    expected = -2 * 50 * (0.3 * np.log(0.3) + 0.7 * np.log(0.7))
    assert collapse_time_prediction(p, n=50, method="littler") == pytest.approx(expected)
    stacked = collapse_time_prediction(np.stack([p, p[::-1]]), n=50, method="littler")
    assert stacked.shape == (2,) and np.allclose(stacked, expected)


def test_power_sums_match_direct_powers():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(40) * 0.3)
    g = diffusion.power_sums(p, 60)
    k = np.arange(61)
    direct = (p[None, :] ** k[:, None]).sum(axis=1)
    direct[0] = np.count_nonzero(p)
    np.testing.assert_allclose(g, direct, rtol=1e-12, atol=1e-19)


@pytest.mark.parametrize("p", FIG2, ids=[f"S0={a}" for a, _ in PAPER_FIG2_PAIRS])
@pytest.mark.parametrize("n", [10, 50, 100, 200, 400])
def test_corrected_prediction_on_the_fig2_distributions(p, n):
    exact = collapse_time_law(p, n=n).mean
    pred = collapse_time_prediction(p, n=n)
    littler = collapse_time_prediction(p, n=n, method="littler")
    if n >= 50:
        assert abs(pred / exact - 1) < 1e-4
    else:
        assert abs(pred / exact - 1) < 3e-3
    # Littler overestimates by about (1/3) ln n generations; the correction removes it.
    assert littler > exact and abs(pred - exact) < 0.1 * (littler - exact)


@pytest.mark.parametrize("p", SKEWED, ids=lambda p: str(p[:2]))
@pytest.mark.parametrize("n", [2, 3, 5, 10, 20, 50, 100, 400])
def test_corrected_prediction_stays_within_one_percent(p, n):
    exact = collapse_time_law(p, n=n).mean
    assert abs(collapse_time_prediction(p, n=n) / exact - 1) < 0.01


def test_kappa_is_the_offset_of_the_population_tmrca():
    # Uniform on V tokens: E[T] − 1 = T_MRCA − Σ_k V^{1−k} τ_k = T_MRCA − τ_2/V + O(n/V²),
    # so two vocabularies give the expected T_MRCA of the whole population of n by Richardson
    # extrapolation (error ≈ n/(3 V²) < 2e-5 here).
    v1, v2 = 3000, 6000
    for n in (60, 150, 400):
        e1 = collapse_time_law(uniform_distribution(v1), n=n).mean
        e2 = collapse_time_law(uniform_distribution(v2), n=n).mean
        tmrca = (v2 * e2 - v1 * e1) / (v2 - v1) - 1
        offset = tmrca - (2 * (n - 1) - np.sum(1 / np.arange(1, n)) / 3)
        assert offset == pytest.approx(diffusion.KAPPA - diffusion.KAPPA_1 / n, abs=2e-4)


def test_uncorrected_times_reproduce_littler_as_n_grows():
    p = FIG2[1]
    n = 2000
    kingman = collapse_time_prediction(p, n=n, method="kingman")
    littler = collapse_time_prediction(p, n=n, method="littler")
    assert abs(kingman - 1 - littler) < 3.0  # truncation: ≈ 2


@pytest.mark.parametrize("p", FIG2[::3], ids=["S0=0.01", "S0=0.7"])
def test_sd_and_law_against_the_exact_law(p):
    n = 50
    exact = collapse_time_law(p, n=n)
    law = diffusion.diffusion_collapse_law(p, n=n)
    assert abs(law.sd / exact.sd - 1) < 0.01
    assert abs(diffusion.collapse_time_sd_prediction(p, n=n) - law.sd) < 1e-9
    assert law.mean == pytest.approx(collapse_time_prediction(p, n=n))
    size = min(law.survival.size, exact.survival.size)
    assert np.max(np.abs(law.survival[:size] - exact.survival[:size])) < 0.02
    # Summing the survival function gives the mean back.
    assert law.survival.sum() == pytest.approx(law.mean, rel=1e-6)
    assert law.quantile(0.5) == pytest.approx(exact.quantile(0.5), abs=2)


def test_edge_cases():
    assert collapse_time_prediction(FIG2[0], n=1) == 1.0
    assert collapse_time_prediction(np.array([0.0, 1.0]), n=30) == 1.0
    assert collapse_time_prediction(np.array([0.0, 1.0]), n=30, method="littler") == 0.0
    law = diffusion.diffusion_collapse_law(np.array([0.5, 0.5]), n=1)
    assert law.mean == 1.0 and law.collapse_prob[1] == 1.0
    with pytest.raises(ValueError, match=r"'n' parameter of theory\.diffusion_collapse_law"):
        diffusion.diffusion_collapse_law(FIG2[0], n=5000)
    with pytest.raises(ValueError, match=r"'n' parameter of theory\.collapse_time_prediction"):
        collapse_time_prediction(FIG2[0], n=0)
    with pytest.raises(ValueError, match="'method' parameter"):
        collapse_time_prediction(FIG2[0], n=10, method="kimura")


def test_prediction_against_simulation():
    p = FIG2[2]
    res = simulate(p0=p, scenario=FullySynthetic(n=30), runs=3000, generations=2000, seed=11,
                   metrics=("sigma",), progress=False)
    T = res.data["collapse_time"].values.ravel()
    assert not np.isnan(T).any()
    z = (T.mean() - collapse_time_prediction(p, n=30)) / (T.std(ddof=1) / np.sqrt(T.size))
    assert abs(z) < 4
