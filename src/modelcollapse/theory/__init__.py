"""The paper's closed forms and bounds, exact laws and sharper predictions: the public API.

One function per quantity, all with one signature convention:

* the first argument is p(0), an array (vocab,) (or (contexts, vocab) where a docstring says
  so: then every context is its own loop and results gain a leading contexts axis); a
  quantity that does not depend on p(0) (``effective_population``) takes keywords only;
* everything else is keyword-only: the loop's sizes ``n`` (synthetic samples per
  generation), ``N`` (real samples), ``K`` (window) for a quantity of one loop, or
  ``scenario`` (the simulator's scenario object, eq. 5: ``FullySynthetic(n=10)``,
  ``spec.build_scenario()``) for a quantity several scenarios share;
* ``m`` is the generation: an int or an int array (the result then has its shape), or
  None for the limit m → ∞ where a quantity has one.

The public functions, by the paper's results:

* S_m = E‖p(m)‖₂² and E‖p(m) − p(1)‖₂², every scenario: ``expected_sigma`` (Theorem 1,
  eq. 6; Theorem 2, eq. 9; §4.2), ``expected_l2sq_to_first``.
* Fully synthetic loop: ``collapse_prob_bounds`` (eq. 7), ``collapse_time_bounds`` (eq. 8),
  ``absorption_probabilities`` (Proposition 1), ``collapse_time_law`` (the exact law of T),
  ``collapse_time_prediction`` (E[T] from the Wright–Fisher diffusion).
* Partially synthetic loop: ``expected_l1_to_first`` (the quantity of Theorems 3-4),
  ``log_theorem3_bound``, ``log_theorem4_bound``, ``log_lemma1_bound`` (Lemma 1), ``pi_p``
  (eq. 12), ``synthetic_budget`` (eq. 11, Theorem 3 and the prediction).
* Mixed generations (§4.2): ``effective_population``, ``most_recent_collapse_prediction``,
  ``l1_to_first_upper_bound``.
* One setting, every applicable quantity: ``theory_report``.

Results use the simulator's metric names (``sigma``, ``l1_to_first``, ``collapse_time`` T,
``collapsed`` ρ_m), so theory against simulation is one subtraction. The building blocks —
the paper's formulas in its own variables (S0, s̃, n, N, s), exact reference chains, the
helpers of each derivation — stay importable from the submodules:

* :mod:`.paper` — Theorems 1–4, Proposition 1, Lemma 1, eqs. 6–13 (bounds in log space).
* :mod:`.moments` — S_m and E‖p(m) − p(1)‖₂² for every scenario (eqs. 6, 9; §4.2).
* :mod:`.genealogy` — the exact law of the fully synthetic collapse time (ancestral lineages).
* :mod:`.lineage_pairs` — E[Σ_i (p_i^{(m)})^r] (eq. 6) and S_m from pairs of lineages (eq. 9).
* :mod:`.markov` — exact small Markov chains, the s = 2 window chain included.
* :mod:`.diffusion` — Wright–Fisher diffusion predictions of E[T], with a finite-n correction.
* :mod:`.partial` — exact E‖p(m) − p(1)‖₂² and E‖p(m) − p(1)‖₁ of the partially synthetic loop.
* :mod:`.mixed` — windows and the random pool: exact second moments, labelled approximations.
* :mod:`.budget` — the largest safe synthetic sample size, three ways.
* :mod:`.report` — every applicable quantity for one setting (``modelcollapse theory``).
"""

from .budget import synthetic_budget
from .diffusion import collapse_time_prediction
from .genealogy import collapse_time_law
from .mixed import effective_population, l1_to_first_upper_bound, most_recent_collapse_prediction
from .moments import expected_l2sq_to_first, expected_sigma
from .paper import (
    absorption_probabilities,
    collapse_prob_bounds,
    collapse_time_bounds,
    log_lemma1_bound,
    log_theorem3_bound,
    log_theorem4_bound,
    pi_p,
)
from .partial import expected_l1_to_first
from .report import theory_report

__all__ = [
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
]

_SUBMODULES = ("budget", "diffusion", "genealogy", "lineage_pairs", "markov", "mixed", "moments",
               "paper", "partial", "report")


def __dir__() -> list[str]:
    return sorted([*__all__, *_SUBMODULES])
