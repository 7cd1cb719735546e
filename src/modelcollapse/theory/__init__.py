"""The paper's closed forms and bounds, and sharper predictions, as functions.

Every function takes the same inputs as the simulator (p(0) arrays, n, N, m) and returns
quantities under the same metric names, so theory against simulation is one subtraction.

* :mod:`.paper` — Theorems 1–4, Proposition 1, Lemma 1, eqs. 6–13 (bounds in log space).
* :mod:`.genealogy` — the exact law of the fully synthetic collapse time (ancestral lineages).
* :mod:`.lineage_pairs` — E[Σ_i (p_i^{(m)})^r] (eq. 6) and exact S_m from pairs of lineages (eq. 9).
* :mod:`.markov` — exact small Markov chains, the s = 2 window chain included.
* :mod:`.diffusion` — Wright–Fisher diffusion predictions of E[T], with a finite-n correction.
* :mod:`.partial` — exact E‖p(m) − p(1)‖₂² and E‖p(m) − p(1)‖₁ of the partially synthetic loop.
* :mod:`.mixed` — windows and the random pool: exact second moments, labelled approximations.
* :mod:`.budget` — the largest safe synthetic sample size, three ways.
"""

from . import budget, diffusion, genealogy, lineage_pairs, markov, mixed, paper, partial
from .budget import *  # noqa: F403
from .diffusion import *  # noqa: F403
from .genealogy import *  # noqa: F403
from .lineage_pairs import *  # noqa: F403
from .markov import *  # noqa: F403
from .mixed import *  # noqa: F403
from .paper import *  # noqa: F403
from .partial import *  # noqa: F403

__all__ = [name for module in (budget, diffusion, genealogy, lineage_pairs, markov, mixed, paper,
                               partial)
           for name in module.__all__]
