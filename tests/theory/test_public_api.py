"""The curated public API of modelcollapse.theory: exactly the listed functions, one per
quantity, each with the same signature convention and a docstring that cites the paper."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from modelcollapse import theory

CURATED = (
    "absorption_probabilities",
    "collapse_prob_bounds",
    "collapse_time_bounds",
    "collapse_time_law",
    "collapse_time_prediction",
    "effective_population",
    "expected_l1_to_first",
    "expected_l2sq_to_first",
    "expected_sigma",
    "l1_to_first_upper_bound",
    "log_lemma1_bound",
    "log_theorem3_bound",
    "log_theorem4_bound",
    "most_recent_collapse_prediction",
    "pi_p",
    "synthetic_budget",
    "theory_report",
)

#: Names the package used to export (star imports of every submodule) that are now building
#: blocks of a public function, duplicates of one, or gone: none may be in its namespace.
OLD_NAMES = (
    "expected_sigma_fully", "expected_sigma_partial", "second_moments", "SecondMoments",
    "expected_power_sum", "partially_synthetic_moments", "PartiallySyntheticMoments",
    "token_second_moments_partial", "expected_l2sq_deviation", "expected_l1_deviation",
    "partial_deviation_summary", "littler_collapse_time", "collapse_time_sd_prediction",
    "diffusion_collapse_law", "DiffusionLaw", "lineage_times", "power_sums", "decay_rate",
    "KINDS", "lambda_p", "phi", "zeta", "expected_lambda_empirical", "log_G", "G_regime",
    "log_weissman_bound", "eq11_max_n", "largest_safe_n_eq11", "largest_safe_n_theorem3",
    "largest_safe_n", "unlimited_deviation", "simulation_generations", "balanced_partition_counts",
    "PartitionValue", "L1Deviation", "BudgetResult", "SimulatedDeviation", "CollapseTimeLaw",
    "lineage_pmf", "occupancy_log_row", "fully_synthetic_chain", "window_chain",
    "FullySyntheticChain", "WindowChain", "corpus_count_weights", "beta_mean_abs_deviation",
    "deviation_variance_factor", "C0", "C1", "KAPPA", "KAPPA_1",
)

#: What a docstring must cite: an equation, theorem, proposition, lemma or section.
CITATION = re.compile(r"eq\. \d+|eqs\. \d+|Theorem \d|Proposition \d|Lemma \d|§\d")


def test_all_is_exactly_the_curated_list():
    assert sorted(theory.__all__) == sorted(CURATED)
    assert len(set(theory.__all__)) == len(theory.__all__)


@pytest.mark.parametrize("name", CURATED)
def test_each_entry_is_a_documented_function_citing_the_paper(name):
    obj = getattr(theory, name)
    assert callable(obj) and inspect.isfunction(obj)
    doc = inspect.getdoc(obj)
    assert doc and CITATION.search(doc), f"{name}: no equation, theorem or section cited"


@pytest.mark.parametrize("name", CURATED)
def test_one_signature_convention(name):
    """p(0) first (positional), everything else keyword-only; the generation is ``m``."""
    params = list(inspect.signature(getattr(theory, name)).parameters.values())
    positional = [p for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    if name == "effective_population":  # does not depend on p(0)
        assert positional == []
    else:
        assert [p.name for p in positional] == ["p0"]
    names = {p.name for p in params}
    assert not names & {"n_generations", "generations", "S0", "support", "s"}, names


@pytest.mark.parametrize("name", OLD_NAMES)
def test_old_and_duplicated_names_are_gone_from_the_package(name):
    assert not hasattr(theory, name)
    with pytest.raises(ImportError):
        exec(f"from modelcollapse.theory import {name}", {})


@pytest.mark.parametrize(("module", "name"), [
    ("partial", "expected_l1_deviation"), ("partial", "partial_deviation_summary"),
    ("diffusion", "littler_collapse_time"), ("lineage_pairs", "expected_sigma"),
])
def test_duplicates_are_gone_from_their_submodules(module, name):
    assert not hasattr(importlib.import_module(f"modelcollapse.theory.{module}"), name)


def test_building_blocks_stay_importable_from_their_submodules():
    from modelcollapse.theory.diffusion import collapse_time_sd_prediction, diffusion_collapse_law
    from modelcollapse.theory.markov import fully_synthetic_chain, window_chain
    from modelcollapse.theory.mixed import decay_rate, second_moments
    from modelcollapse.theory.paper import expected_sigma_fully, expected_sigma_partial, log_G

    for fn in (collapse_time_sd_prediction, diffusion_collapse_law, fully_synthetic_chain,
               window_chain, decay_rate, second_moments, expected_sigma_fully,
               expected_sigma_partial, log_G):
        assert callable(fn)


def test_dir_lists_the_public_api_and_the_submodules():
    listed = dir(theory)
    assert set(CURATED) <= set(listed)
    assert "paper" in listed and "expected_sigma_fully" not in listed
