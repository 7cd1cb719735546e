"""The partially synthetic loop run row by row in compiled code (numpy backend with numba).

The generation loop (engine/loop.py) advances every row one generation at a time, so each generation
re-reads every row's counts and references from memory. In the partially synthetic loop
(paper §2.2, §3.2) model m is the fixed corpus plus n draws of model m − 1, so a row's whole
state is its corpus and its last n draws: each row can run all its generations while that
state stays in cache (:func:`kernels.fixed_corpus_loop`).

The random positions are drawn beforehand, a slab of generations at a time, with the same
generator calls in the same order as the generic loop makes them (one call per block and
generation: the stream of compact integer draws depends on how it is split into calls), so
both routes see the same draws and give the same results (tests/test_fixed_corpus.py).
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import kernels
from .sampling import draw_positions

#: Positions drawn per generator call: bounds the memory the drawn positions take (8 MiB).
DRAWS_PER_CALL = 1 << 20
#: Metric values per window of generations handed to the recorder: bounds its memory (32 MiB).
WINDOW_VALUES = 1 << 22


def run_generations(history, meter, true: np.ndarray, where, collapse_time: np.ndarray,
                    first_generation: int, n_generations: int, recorder, bar, threads: int,
                    n_contexts: int) -> None:
    """Generations ``first_generation`` … ``n_generations`` of the rows still in ``history``.

    Models before ``first_generation`` were fitted by the generation loop, and model
    ``first_generation`` − 1 must be the corpus alone. ``where`` are the recorder's rows of
    the rows in ``history`` (a slice or global ids); the first generation each row's model is
    a Dirac mass goes to ``collapse_time`` (one entry per row, left alone where set).
    Generations go in windows: every run block runs the window's generations into one
    (metrics, rows, generations) array, which the recorder then takes in one call, in the same
    order whatever the threads did. Run blocks are independent (each has its own stream and
    rows), so up to ``threads`` of them run at once; the kernel and numpy's bounded draws
    release the GIL. Results do not depend on it.
    """
    corpus_model = history.corpus_model()
    corpus, base = corpus_model.tokens, corpus_model.counts
    n = history.scenario.fixed_step.draws
    size = corpus.shape[1] + n
    extra = np.zeros((corpus.shape[0], n), dtype=corpus.dtype)
    blocks = list(history.streams.blocks())
    widest = max((b - a for _, a, b in blocks), default=1)
    names = recorder.names
    n_rows = corpus.shape[0]
    rows_index = np.arange(n_rows)
    first_counts = meter.first_counts
    pool = (ThreadPoolExecutor(min(threads, len(blocks)))
            if threads > 1 and len(blocks) > 1 else None)

    # One window array for all windows: a fresh one each time would fault its pages in again.
    most = max(1, min(n_generations - first_generation + 1,
                      WINDOW_VALUES // max(1, len(names) * n_rows),
                      DRAWS_PER_CALL // (widest * n)))
    windows = np.empty((len(names), n_rows, most))

    def run_block(block, m: int, steps: int, window: np.ndarray) -> None:
        generator, a, b = block
        rows = slice(a, b)
        high = corpus.shape[1] if m == first_generation else size  # model m − 1's tokens
        index = np.stack([draw_positions(generator, high, (b - a, n)) for _ in range(steps)])
        kernels.fixed_corpus_loop(corpus[rows], extra[rows], index, m, base[rows],
                                   first_counts[rows], meter.first_total, true[rows],
                                   rows_index[rows], names, window[:, rows], collapse_time)

    try:
        m = first_generation
        while m <= n_generations:
            # The first model drawn from is the corpus alone: one generation at that width.
            steps = 1 if m == first_generation else min(most, n_generations - m + 1)
            window = windows[:, :, :steps]
            jobs = [functools.partial(run_block, block, m, steps, window) for block in blocks]
            if pool is None:
                for job in jobs:
                    job()
            else:
                for _ in pool.map(lambda job: job(), jobs):  # re-raises a block's error here
                    pass
            recorder.record_window(m, where, window)
            bar.update(steps * n_rows // n_contexts)
            m += steps
    finally:  # on an error or Ctrl-C, blocks not yet started are dropped
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
