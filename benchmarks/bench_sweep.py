"""Wall time of a 200-point sweep (examples/sweep_n_S0.toml: n × S0, 1000 runs, 200
generations) with the local process pool and with a Dask LocalCluster of the same size.

    python benchmarks/bench_sweep.py [--workers 2] [--spec examples/sweep_n_S0.toml]
    python benchmarks/bench_sweep.py --malloc     # only the MALLOC_TRIM_THRESHOLD_ check

Both runs start from an empty folder and include their executor's start-up. The script checks
that the two give identical tables, then models W workers: the points are independent, so
the time is about  startup + max(Σ t_point / W, max t_point)  (longest-first scheduling keeps
the tail near the slowest point); the per-point CPU times come from the points table.

``--malloc`` times the costliest point (n = 1000) in two concurrent processes, with and
without the ``MALLOC_TRIM_THRESHOLD_=65536`` that Dask's nanny sets in its workers by default.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from modelcollapse.sweep import load_sweep_spec, open_executor, run_sweep

ROOT = Path(__file__).resolve().parent.parent


def _timed(spec, out: Path, **kwargs) -> tuple[float, pd.DataFrame, pd.DataFrame]:
    started = time.perf_counter()
    outcome = run_sweep(spec, out, progress=False, **kwargs)
    seconds = time.perf_counter() - started
    # The machine may be shared: the 1-minute load average says how busy it was meanwhile.
    print(f"{kwargs.get('executor', 'local'):<6} {seconds:6.1f} s   load average "
          f"{os.getloadavg()[0]:.1f}", file=sys.stderr)
    return seconds, outcome.points(), outcome.generations()


def _startup(kind: str, workers: int) -> float:
    """Seconds to bring an executor up, run one trivial task on every worker, and close it."""
    started = time.perf_counter()
    with open_executor(kind, workers=workers) as pool:
        list(pool.map(abs, range(workers)))
    return time.perf_counter() - started


_ONE_POINT = ("import time; from modelcollapse.api import simulate; t = time.perf_counter(); "
              "simulate(runs=1000, generations=200, n=1000, S0=0.3, vocab=600, support=52, "
              "seed=1); print(time.perf_counter() - t)")


def _malloc_check(repeats: int = 2) -> dict[str, list[float]]:
    """Seconds of the n = 1000 point, two processes at a time, per allocator setting."""
    out: dict[str, list[float]] = {"plain": [], "MALLOC_TRIM_THRESHOLD_=65536": []}
    for _ in range(repeats):
        for label in out:
            env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
            if label != "plain":
                env["MALLOC_TRIM_THRESHOLD_"] = "65536"
            procs = [subprocess.Popen([sys.executable, "-c", _ONE_POINT], env=env,
                                      stdout=subprocess.PIPE, text=True) for _ in range(2)]
            out[label] += [round(float(p.communicate()[0]), 2) for p in procs]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "examples" / "sweep_n_S0.toml"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--malloc", action="store_true", help="run only the allocator check")
    args = parser.parse_args()
    if args.malloc:
        print(json.dumps({"load_average": os.getloadavg()[0], **_malloc_check()}, indent=2))
        return
    spec = load_sweep_spec(args.spec)
    scratch = Path(tempfile.mkdtemp(prefix="bench_sweep."))
    try:
        local_s, points, generations = _timed(spec, scratch / "local", workers=args.workers)
        dask_s, points_d, generations_d = _timed(spec, scratch / "dask", executor="dask",
                                                 workers=args.workers)
        timing = ["elapsed_s", "cpu_s"]
        pd.testing.assert_frame_equal(points.drop(columns=timing), points_d.drop(columns=timing))
        pd.testing.assert_frame_equal(generations, generations_d)
        startup = {kind: _startup(kind, args.workers) for kind in ("local", "dask")}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    # CPU seconds per point do not grow when other processes share the cores (wall seconds
    # do), so the model for W dedicated workers is built on them.
    work = float(points["cpu_s"].sum())
    slowest = float(points["cpu_s"].max())
    model = {w: round(startup["dask"] + max(work / w, slowest), 1)
             for w in (1, 2, 4, 8, 16, 32, 64)}
    report = {
        "spec": Path(args.spec).name, "points": len(points),
        "runs": spec.runs, "generations": spec.generations, "workers": args.workers,
        "cores": os.cpu_count(), "local_s": round(local_s, 1), "dask_s": round(dask_s, 1),
        "startup_s": {k: round(v, 1) for k, v in startup.items()},
        "identical_tables": True,
        "work_cpu_s": round(work, 1), "work_wall_s": round(float(points["elapsed_s"].sum()), 1),
        "slowest_point_cpu_s": round(slowest, 2),
        "fastest_point_cpu_s": round(float(points["cpu_s"].min()), 3),
        "slowest_point": {axis: points.loc[points["cpu_s"].idxmax(), axis].item()
                          for axis in spec.axes},
        "model_s_by_dedicated_workers": model,
        "max_useful_workers": int(work // slowest),
    }
    text = json.dumps(report, indent=2, default=float)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
