"""The softmax model on context embeddings: the functional approximation error (paper §5).

    >>> from modelcollapse import functional
    >>> res = functional.run({"contexts": 81, "vocab": 100, "dim": 16, "weight_decay": 1e-4,
    ...                       "runs": 200, "generations": 100}, seed=0)
    >>> res.mean("sigma")

Needs the ``lm`` extra (PyTorch); ``import modelcollapse`` does not import this package.
"""

from .loop import build_problem, run
from .model import EMBEDDINGS, P0_FAMILIES, Embeddings, make_embeddings, make_p0, softmax
from .solvers import SOLVERS, FitStats, SoftmaxObjective, fit
from .spec import FunctionalSpec

__all__ = [
    "EMBEDDINGS",
    "P0_FAMILIES",
    "SOLVERS",
    "Embeddings",
    "FitStats",
    "FunctionalSpec",
    "SoftmaxObjective",
    "build_problem",
    "fit",
    "make_embeddings",
    "make_p0",
    "run",
    "softmax",
]


def __dir__() -> list[str]:
    return sorted(__all__)
