"""The partially synthetic loop run row by row in compiled code (numpy backend with numba).

The generic loop (loop.py) advances every row one generation at a time, so each generation
re-reads every row's counts and references from memory. In the partially synthetic loop
(paper §2.2, §3.2) model m is the fixed corpus plus n draws of model m − 1, so a row's whole
state is its corpus and its last n draws: each row can run all its generations while that
state stays in cache (:func:`_kernels.fixed_corpus_loop`).

The random positions are drawn beforehand, a slab of generations at a time, with the same
generator calls in the same order as the generic loop makes them (one call per block and
generation: the stream of compact integer draws depends on how it is split into calls), so
both routes see the same draws and give the same results (tests/test_fixed_corpus.py).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _kernels
from .sampling import draw_positions
from .scenarios import PartiallySynthetic, Scenario

#: Positions drawn per generator call: bounds the memory the drawn positions take (8 MiB).
DRAWS_PER_CALL = 1 << 20


def applies(scenario: Scenario, compiled: bool) -> bool:
    """Whether this route takes over the generations after p(1): numba is there and the
    scenario is the partially synthetic one."""
    return compiled and type(scenario) is PartiallySynthetic


def run_generations(history, meter, true: np.ndarray, alive: np.ndarray, first_generation: int,
                    n_generations: int, store, n_contexts: int, bar, threads: int) -> None:
    """Generations ``first_generation`` … ``n_generations`` of the rows still in ``history``.

    Models before ``first_generation`` were fitted by the generic loop, and model
    ``first_generation`` − 1 must be the corpus alone. ``alive`` are the output rows of the
    rows in ``history``; metrics and Dirac facts go straight into ``store``. Run blocks are
    independent (each has its own stream and rows), so up to ``threads`` of them run at once;
    the kernel and numpy's bounded draws release the GIL. Results do not depend on it.
    """
    corpus_model = history.corpus_model()
    corpus, base = corpus_model.tokens, corpus_model.counts
    n = history.scenario.n
    size = corpus.shape[1] + n
    extra = np.zeros((corpus.shape[0], n), dtype=corpus.dtype)
    lock = threading.Lock()

    def run_block(block) -> None:
        generator, a, b = block
        rows = slice(a, b)
        m, high = first_generation, corpus.shape[1]  # model m − 1 = the corpus alone
        while m <= n_generations:
            steps = 1 if high < size else max(1, min(n_generations - m + 1,
                                                      DRAWS_PER_CALL // ((b - a) * n)))
            index = np.stack([draw_positions(generator, high, (b - a, n))
                              for _ in range(steps)])
            _kernels.fixed_corpus_loop(corpus[rows], extra[rows], index, m, base[rows],
                                       meter.first_counts[rows], meter.first_total,
                                       true[rows], alive[rows], store.float_names, store.table,
                                       store.arrays["collapsed"],
                                       store.outcomes["collapse_time"])
            with lock:
                bar.update(steps * (b - a) // n_contexts)
            m, high = m + steps, size

    blocks = list(history.streams.blocks())
    if threads > 1 and len(blocks) > 1:
        pool = ThreadPoolExecutor(min(threads, len(blocks)))
        try:
            for _ in pool.map(run_block, blocks):  # re-raises a block's error here
                pass
        finally:  # on an error or Ctrl-C, blocks not yet started are dropped
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        for block in blocks:
            run_block(block)
