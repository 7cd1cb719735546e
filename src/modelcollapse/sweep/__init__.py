"""Parameter sweeps: a grid of simulations on local processes or a Dask cluster, stored as tidy
Parquet tables plus the full result of every grid point, resumable point by point.

A sweep spec is a simulation spec (the keys of :class:`~modelcollapse.spec.SimulationSpec`,
held fixed) plus an ``[axes]`` table; every combination of axis values is one grid point, a
whole :func:`~modelcollapse.api.simulate` call with ``runs`` runs of ``generations``
generations (the loop of eq. 5, metrics of §3)::

    runs = 1000
    generations = 200
    seed = 2024
    trajectories = 10       # result.zarr also keeps runs 0 … 9 whole (default "none")
    vocab = 600
    support = 52

    [axes]
    n = { start = 2, stop = 1000, num = 20, log = true }   # ints: rounded, must stay distinct
    S0 = { start = 0.02, stop = 0.5, num = 10 }            # linspace, both ends included
    # or a list: K = [1, 2, 4]; or a step: N = { start = 100, stop = 500, step = 100 }

**Seeds.** Point seeds depend on the sweep seed and the point's coordinates only, never on its
position in the grid, the executor or the worker count: with ``c`` the canonical JSON of the
coordinates (keys sorted, values of the field's type), ``w`` the eight little-endian 32-bit
words of SHA-256(c), the point's entropy is the 128-bit integer read from
``SeedSequence(sweep_entropy, spawn_key=w).generate_state(4)``. Growing or reordering an axis
therefore leaves the numbers of every existing point unchanged (and resume reuses them). p(0)
is built from ``distribution_seed``, by default the sweep entropy, so points that share the
parameters of p(0) share p(0) itself (common random numbers across, say, the n axis).

**Output folder**::

    sweep.json                        the spec, the resolved sweep entropy, the grid
    points/<id>/generations.parquet   one row per generation: means and standard errors
    points/<id>/result.zarr           the point's Result (Result.save; or result.nc): its
                                      statistics, per-run outcomes and the trajectories
                                      that ``trajectories`` asks for
    points/<id>/point.parquet         one row: parameters, collapse-time statistics.
                                      Written last; the point is finished when its files
                                      read back whole and its result checks
    generations.parquet, points.parquet   the tables over the whole grid (when it completes)

Every file is written atomically (temporary name, then rename), so killing a sweep loses at
most the points in flight; re-running skips the finished ones and recomputes any point whose
files are damaged. With a Dask cluster the
workers write the point files themselves: the output folder must be a path they all reach
(a shared filesystem, as on a cluster with dask-jobqueue).
"""

from .executors import open_executor
from .query import connect, query
from .run import SweepOutcome, run_sweep
from .spec import (
    AxisRange,
    SweepInputError,
    SweepPoint,
    SweepSpec,
    load_sweep_spec,
    point_entropy,
    point_id,
)

# isort: split
# The other public-named objects of the single module this package replaced (output layout,
# table builders) stay importable from here, outside the public API.
from .._system import available_cores as default_workers  # noqa: F401
from .spec import NOT_AXES, AxisValue  # noqa: F401
from .store import DONE_FILE, POINTS_DIR, RESULT_FILES, TABLES  # noqa: F401
from .tables import QUANTILES, generation_table, point_table  # noqa: F401

__all__ = ["AxisRange", "SweepInputError", "SweepOutcome", "SweepPoint", "SweepSpec", "connect",
           "load_sweep_spec", "open_executor", "point_entropy", "point_id", "query", "run_sweep"]
