"""Seeds for torch generators, derived from the run's entropy and a fixed key.

Every random draw of a run comes from a ``torch.Generator`` seeded with
``torch_seed(entropy, purpose, generation)``; the keys are part of the reproducibility
contract (changing one changes results), and no draw depends on another stream's state,
so a generation can be recomputed from the seed alone, which is what makes resume exact.
"""

from __future__ import annotations

import numpy as np
import torch

#: Purposes of the independent streams of one generation.
INIT, BATCHES, DROPOUT, GENERATE, CONTEXTS = range(5)


def torch_seed(entropy: int, *key: int) -> int:
    """A 63-bit seed from ``SeedSequence(entropy, spawn_key=key)``."""
    state = np.random.SeedSequence(entropy, spawn_key=tuple(int(k) for k in key))
    return int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def torch_generator(entropy: int, *key: int, device: torch.device | str = "cpu"
                    ) -> torch.Generator:
    """A generator on ``device`` seeded with :func:`torch_seed`."""
    return torch.Generator(device=device).manual_seed(torch_seed(entropy, *key))
