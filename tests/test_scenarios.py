import numpy as np
import pytest

from modelcollapse.scenarios import (
    SCENARIOS,
    Accumulate,
    AccumulateSubsample,
    Custom,
    FreshReal,
    FullySynthetic,
    MostRecent,
    PartiallySynthetic,
    RandomPool,
    make_scenario,
)


def test_registry_resolves_every_name_and_lists_choices():
    for name in SCENARIOS:
        if name != "custom":
            assert make_scenario(name, n=10, N=100, K=3).name == name
    with pytest.raises(ValueError, match=r"Scenario 'nope' unknown. Choose from \['accumulate'"):
        make_scenario("nope", n=10)
    with pytest.raises(ValueError, match="'N' parameter of scenario is required"):
        make_scenario("partially-synthetic", n=10)
    with pytest.raises(ValueError, match="'K' parameter of scenario is required"):
        make_scenario("most-recent", n=10)


@pytest.mark.parametrize("build", [
    lambda: FullySynthetic(0), lambda: PartiallySynthetic(10, 0), lambda: MostRecent(10, 0),
    lambda: MostRecent(4, 5, "literal"), lambda: MostRecent(4, 2, "odd"),
    lambda: RandomPool(-1), lambda: Accumulate(1, 0), lambda: FreshReal(0, 1),
    lambda: AccumulateSubsample(1, 0), lambda: Custom(lambda m: [1] * m, real_mode="corpus"),
])
def test_bad_parameters_are_rejected(build):
    with pytest.raises((ValueError, TypeError), match="parameter of scenario"):
        build()


def test_eq5_counts_of_the_paper_scenarios():
    assert FullySynthetic(10).counts(4).tolist() == [0, 0, 0, 10]
    assert PartiallySynthetic(10, 100).counts(1).tolist() == [100]
    assert PartiallySynthetic(10, 100).counts(3).tolist() == [100, 0, 10]
    assert Accumulate(10, 100).counts(3).tolist() == [100, 10, 10]
    assert FreshReal(10, 100).counts(2).tolist() == [100, 10]
    assert np.allclose(RandomPool(10).counts(4), 2.5)


def test_most_recent_even_split_spreads_the_remainder_to_recent_models():
    s = MostRecent(10, 5)
    assert s.counts(1).tolist() == [10]
    assert s.counts(2).tolist() == [5, 5]
    assert s.counts(3).tolist() == [3, 3, 4]
    assert s.counts(4).tolist() == [2, 2, 3, 3]
    assert s.counts(7).tolist() == [0, 0, 2, 2, 2, 2, 2]
    for m in range(1, 30):
        assert s.counts(m).sum() == 10


def test_most_recent_literal_split_is_eq5_as_written():
    s = MostRecent(10, 10, "literal")
    assert s.counts(1).tolist() == [1]  # p(1) on a single sample: a Dirac mass at once
    assert s.counts(12).tolist() == [0, 0] + [1] * 10
    assert MostRecent(10, 3, "literal").counts(2).tolist() == [3, 3]


def test_most_recent_with_K_1_is_fully_synthetic():
    for m in range(1, 6):
        assert np.array_equal(MostRecent(7, 1).counts(m), FullySynthetic(7).counts(m))


def test_custom_rule_from_function_and_matrix():
    rule = Custom(lambda m: np.r_[np.zeros(m - 1, int), 5])
    assert rule.counts(3).tolist() == [0, 0, 5]
    matrix = np.array([[4, 0, 0], [2, 2, 0], [1, 1, 2]])
    assert Custom(matrix).counts(3).tolist() == [1, 1, 2]
    with pytest.raises(ValueError, match="has 3 rows"):
        Custom(matrix).counts(4)
    with pytest.raises(ValueError, match="non-negative integer counts"):
        Custom(lambda m: [-1] * m).counts(2)
    with pytest.raises(ValueError, match="no samples"):
        Custom(lambda m: [0] * m).counts(2)
