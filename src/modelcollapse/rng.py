"""Explicit randomness: seeds in, one independent stream per fixed block of runs out.

Runs are grouped into blocks of ``RUN_BLOCK`` consecutive runs. Block ``b`` draws only from
``Generator(PCG64DXSM(SeedSequence(entropy, spawn_key=(b,))))``, so any run can be recomputed
from its block, and results depend neither on how runs are chunked nor on worker count.
"""

from __future__ import annotations

import secrets

import numpy as np

SeedLike = int | np.random.SeedSequence | np.random.Generator | None

#: Runs per random stream. Part of the reproducibility contract: changing it changes results.
RUN_BLOCK = 1000


def resolve_entropy(seed: int | np.random.SeedSequence | None) -> int:
    """The integer entropy a seed stands for (fresh OS entropy for ``None``), to be recorded."""
    if seed is None:
        return secrets.randbits(128)
    if isinstance(seed, np.random.SeedSequence):
        entropy = seed.entropy
        if isinstance(entropy, int):
            return entropy
        raise TypeError("The 'seed' parameter must be an int or a SeedSequence with int entropy.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"The 'seed' parameter must be a non-negative int, a SeedSequence or None. "
                        f"Got {seed!r} instead.")
    return int(seed)


def generator(seed: SeedLike) -> np.random.Generator:
    """A Generator for one-off draws (building p(0), say); passes Generators through."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.Generator(np.random.PCG64DXSM(np.random.SeedSequence(resolve_entropy(seed))))


def keyed_generator(entropy: int, *key: int) -> np.random.Generator:
    """The stream ``SeedSequence(entropy, spawn_key=key)``: one independent stream per key."""
    return np.random.Generator(np.random.PCG64DXSM(np.random.SeedSequence(entropy,
                                                                         spawn_key=key)))


def block_generator(entropy: int, block: int, *, stream: int = 0) -> np.random.Generator:
    """The stream of run block ``block``; ``stream`` separates independent uses of one block."""
    return keyed_generator(entropy, stream, block)
