"""modelcollapse: simulate, predict and reproduce language model collapse.

The reference implementation of the statistical framework of "How Bad is Training on
Synthetic Data? A Statistical Analysis of Language Model Collapse" (Seddik et al., 2024).

    >>> import modelcollapse as mc
    >>> res = mc.simulate(scenario="partially-synthetic", n=10, N=100, generations=20,
    ...                   runs=50, seed=1)
    >>> mean, se = res.mean("sigma")
"""

from .api import plan, simulate
from .results import Result
from .scenarios import SCENARIOS, make_scenario
from .spec import SimulationSpec, load_spec

__all__ = ["SCENARIOS", "Result", "SimulationSpec", "load_spec", "make_scenario", "plan",
           "simulate"]


def __dir__() -> list[str]:
    return sorted(__all__)
