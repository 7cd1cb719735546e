"""The budget's fast routes against the obvious ones, and the facts its output states."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import binom

from modelcollapse.cli import cli
from modelcollapse.theory import budget, partial
from modelcollapse.theory.partial import expected_l1_to_first


def _reference_weights(p: np.ndarray, N: int) -> np.ndarray:
    return sum(binom.pmf(np.arange(N + 1), N, pi) for pi in p[p > 0])


def _reference_search(p, N, epsilon, m):
    """The search as it was: doubling then bisection, each value from the public function."""
    def f(n):
        return 0.0 if n == 0 else expected_l1_to_first(p, n=n, N=N, m=m).value
    lo, hi = 0, 1
    while f(hi) <= epsilon:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if f(mid) <= epsilon else (lo, mid)
    return lo


@pytest.mark.parametrize("n, N, m", [(7, 20, 3), (50, 100, None), (50, 100, 5),
                                     (1000, 500, 12), (300, 1000, None)])
def test_batched_chains_equal_the_chain_of_each_count(n, N, m):
    cs = np.arange(1, N)
    factor = partial.deviation_variance_factor(n, N, m)
    batched = partial._exact_counts(cs, N, n, m, factor)
    one_by_one = np.array([partial._exact_count(int(c), N, n, m, factor) for c in cs])
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-12, atol=1e-300)


def test_the_weight_table_equals_a_sum_of_binomials_on_both_routes():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(40))
    p = np.concatenate([p, p]) / 2  # repeated values are grouped
    np.testing.assert_allclose(partial.corpus_count_weights(p, 500), _reference_weights(p, 500),
                               rtol=1e-12, atol=1e-15)
    p = rng.dirichlet(np.ones(300))  # 300 × (N + 1) cells: the windowed route
    N = 100_000
    fast, slow = partial.corpus_count_weights(p, N), _reference_weights(p, N)
    # the windows (±12 sd) drop tails below 1e-30 per token
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-25)


@pytest.mark.parametrize("support, N, epsilon, m", [(30, 100, 0.1, None), (50, 200, 0.15, None),
                                                    (20, 1000, 0.05, 10), (200, 2000, 0.1, None)])
def test_the_search_finds_what_bisection_finds(support, N, epsilon, m):
    p = np.full(support, 1 / support)
    n, at_n, at_next, _ = budget.largest_safe_n(p, N, epsilon, m)
    assert n == _reference_search(p, N, epsilon, m)
    assert at_n <= epsilon < at_next


def _budget(*args):
    return CliRunner().invoke(cli, ["budget", *args], terminal_width=200)


COMMON = ("--vocab", "600", "--support", "600", "--family", "uniform", "--epsilon", "0.1",
          "--runs", "20")


def test_N_and_its_old_name_real_give_the_same_answer():
    new = _budget(*COMMON, "--N", "100", "--format", "json")
    old = _budget(*COMMON, "--real", "100", "--format", "json")
    assert new.exit_code == 0 and old.exit_code == 0
    assert json.loads(new.stdout) == json.loads(old.stdout)
    assert _budget(*COMMON, "--N", "100", "--real", "50").exit_code == 2
    missing = _budget(*COMMON)
    assert missing.exit_code == 2 and "--N" in missing.stderr


def test_help_names_N_hides_real_and_shows_every_default():
    text = _budget("--help").output
    assert "--N " in text and "--real" not in text
    for default in ("[default: 100]", "[default: 0]", "[default: simulate]",
                    "[default: table]", "[default: on a TTY]",
                    "[default: every generation (m → ∞)]", "[default: --seed]"):
        assert default in text, default


def test_the_output_states_share_generation_scope_and_epsilon():
    res = _budget(*COMMON, "--N", "100", "--format", "json")
    out = json.loads(res.stdout)
    n = out["n_prediction"]
    assert out["synthetic_share"] == pytest.approx(n / (100 + n))
    assert out["simulated_generation"] == out["simulation"][0]["generation"]
    assert "0.1%" in out["simulated_generation_reason"]
    assert "per context" in out["scope"] and "ε/2" in out["epsilon_meaning"]
    table = _budget(*COMMON, "--N", "100", "--generations", "5")
    assert table.exit_code == 0
    assert "generation 5: the generation m asked for" in table.stdout
    assert "n/(N + n)" in table.stdout and "unigram" in table.stdout
    line = next(x for x in table.stdout.splitlines() if "at n + 1" in x)
    at_n, at_next = line.split("E‖·‖₁ = ")[1].rstrip(")").split(" at n, ")
    assert at_n != at_next.removesuffix(" at n + 1")


def test_progress_goes_to_stderr_only_when_asked():
    quiet = _budget(*COMMON, "--N", "100", "--no-simulate")
    loud = _budget(*COMMON, "--N", "100", "--no-simulate", "--progress")
    assert quiet.stderr == "" and "budget: searching n" in loud.stderr
    assert quiet.stdout == loud.stdout


def test_pair_prints_enough_digits_to_tell_values_apart():
    from modelcollapse.cli.budget import _pair
    a, b = _pair(0.09999999739, 0.10000001901)
    assert a != b and float(a) < float(b)
    assert _pair(0.25, 0.5) == ("0.2500", "0.5000")
