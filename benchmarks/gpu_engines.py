"""CUDA numbers of the torch engine for the goal case, in one short command (~30 s on an H100).

    python benchmarks/gpu_engines.py [--out DIR] [--time-limit S]  # DIR: --out, $OUT or "."

Goal case (issue 7: ≥ 10^10 trials/s on one H100 and ≥ 50× the numpy engine on the same
machine's CPU): fully synthetic (§2.2), runs = 10^5, n = 100, vocabulary 600, support 600,
p(0) = target_distribution(600, 600, S0 = 1.5/600, seed 0) — a nearly uniform p(0), so runs
live long (E[T] ≈ 2n = 200; the "alive" column is the share of run-generations not yet
absorbed); metrics σ and ‖p(m) − p(1)‖₁. Trials = runs × generations × n. "wall" is the
whole ``simulate`` call (the plan, host result arrays and the xarray Result included).

Measured in this order, each in its own guard (a failure is recorded and the rest goes on):
  1. torch-cuda, goal case, G = 20 and 100 (the fastest of 3) on the route the engine picks
     (the fused kernel of ``engine.torch.fused``), G = 100 again with its checks read at
     once (``LAGGED_CHECKS`` off: the host waits for the device at every check), and G = 100
     on the generic route (``fused=False``) beside it (sanity: mean σ_m against Theorem 1
     eq. 6);
  2. the numpy engine on this machine's CPU (one thread), goal case, G = 20, and the ratios;
     then a torch.profiler pass over the CUDA goal case (G = 20): the kernels with the most
     device time and their calls per generation, to show where a generation's time goes; and
     a cProfile pass over the host side (G = 100): the Python functions with the most time;
  3. raw generator throughput: torch Philox on the GPU, numpy PCG64DXSM on the CPU;
  4. torch-cuda, goal case, G = 1000 (most runs absorbed by then: see "alive");
  5. torch-cuda, goal case, every metric, G = 100;
  6. torch-cuda, partially synthetic N = 100, n = 100 (never absorbs), G = 200, on the route
     the engine picks (fused: models of n + N = 200 ≤ 256 tokens) and on the generic route
     (sanity: mean σ_m against Theorem 2 eq. 9);
  7. n ∈ {1000, 4000, 16000}, support 52, G = 10 (runs = 10^5, or 10^8 / n where fewer): token
     draws against binomial-tree counts, where the two representations cross over on this
     device (``engine.plan.COUNTS_RATIO``: "auto" picks counts from n = ratio · 63 on).
Writes gpu_engines.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from modelcollapse import simulate
from modelcollapse.distributions import target_distribution
from modelcollapse.engine.torch import backend as torch_engine
from modelcollapse.metrics import resolve_metrics
from modelcollapse.scenarios import FullySynthetic, PartiallySynthetic
from modelcollapse.theory.paper import expected_sigma_fully, expected_sigma_partial

RUNS, N_SAMPLES, VOCAB, SUPPORT = 100_000, 100, 600, 600
S0 = 1.5 / SUPPORT
METRICS = ("sigma", "l1_to_first")
#: n of the representation crossover cases (support 52: a tree draw costs 63 binomials).
CROSSOVER_N = (1000, 4000, 16000)
TIME_LIMIT = 170.0  # seconds (default of --time-limit); later items are skipped past it


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"torch": torch.__version__, "numpy": np.__version__, "cpu": cpu,
            "cpu_count": os.cpu_count(), "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda)
    return info


def run_torch(p0, scenario, runs, generations, device, metrics=METRICS, representation="auto",
              fused=None, repeat: int = 1, warm_up: bool = True) -> dict:
    """A timed torch run (the fastest of ``repeat``; with ``warm_up``, after an untimed small
    run of the same case, which compiles the kernel variant it needs): wall seconds of the
    whole call, trials/s, alive share, and for the fully synthetic loop the largest |z| of
    mean σ_m against Theorem 1 eq. 6."""
    def run(n_runs, n_generations):
        return simulate(p0=p0, scenario=scenario, runs=n_runs, generations=n_generations,
                        backend="torch", seed=1, metrics=resolve_metrics(metrics),
                        device=device, representation=representation, fused=fused,
                        trajectories="none")

    if warm_up:
        run(min(runs, 2000), min(generations, 3))
    wall, walls = np.inf, []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        res = run(runs, generations)
        elapsed = time.perf_counter() - start
        walls.append(elapsed)
        wall = min(wall, elapsed)
    trials = runs * generations * scenario.n
    absorbed = res.data["absorption_time"].values.ravel()
    lived = np.minimum(np.nan_to_num(absorbed, nan=generations), generations)
    row = {"runs": runs, "generations": generations, "n": scenario.n,
           "scenario": scenario.describe(), "representation": res.data.attrs["representation"],
           "route": res.data.attrs["route"],
           "wall_s": wall, "walls_s": walls, "trials": trials, "rate_wall": trials / wall,
           "alive": float(lived.mean() / generations)}
    s0 = float(np.sum(p0 ** 2))
    if isinstance(scenario, FullySynthetic):
        row["eq6_max_abs_z"] = theory_max_z(res, lambda m: expected_sigma_fully(s0, scenario.n, m))
    elif isinstance(scenario, PartiallySynthetic):
        row["eq9_max_abs_z"] = theory_max_z(
            res, lambda m: expected_sigma_partial(s0, scenario.n, scenario.N, m))
    return row


def theory_max_z(res, expected, last: int = 300) -> float:
    """Largest |z| of mean σ_m against ``expected(m)`` (Theorem 1 eq. 6 or Theorem 2 eq. 9,
    for an array of m) over m = 1 … min(G, last), where the standard error is positive (once
    every run has collapsed, σ_m = 1 exactly)."""
    mean, se = res.mean("sigma")
    m = np.arange(1, min(mean.size, last + 1))
    z = (mean[m] - expected(m)) / np.where(se[m] > 0, se[m], np.nan)
    return float(np.nanmax(np.abs(z)))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rng_rates(device: str, count: int = 1 << 28) -> dict:
    out = {}
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    kind = "Philox" if device.startswith("cuda") else "MT19937"
    for label, dtype, fill in ((f"torch {kind} uniform float32", torch.float32, "uniform"),
                               (f"torch {kind} uniform float64", torch.float64, "uniform"),
                               (f"torch {kind} 62-bit words (the engine's)", torch.int64,
                                "random")):
        buf = torch.empty(count, dtype=dtype, device=device)

        def draw(buf=buf, fill=fill):
            if fill == "uniform":
                buf.uniform_(generator=gen)
            else:
                buf.random_(0, 1 << 62, generator=gen)

        draw()
        _sync(device)
        best = np.inf
        for _ in range(5):
            start = time.perf_counter()
            draw()
            _sync(device)
            best = min(best, time.perf_counter() - start)
        out[label] = count / best
        del buf
    rng = np.random.Generator(np.random.PCG64DXSM(0))
    start = time.perf_counter()
    for _ in range(10):
        rng.random(10_000_000)
    out["numpy PCG64DXSM uniform float64 (cpu)"] = 1e8 / (time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu to try the script")
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of the goal case (10^5)")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT,
                        help="seconds after which the remaining items are skipped")
    args = parser.parse_args(argv)
    device, runs = args.device, args.runs
    out_dir = args.out or Path(os.environ.get("OUT") or ".")
    out_dir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    report: dict = {"machine": machine(), "device": device, "case": {
        "scenario": "fully-synthetic", "runs": runs, "n": N_SAMPLES, "vocab": VOCAB,
        "support": SUPPORT, "S0": S0, "p0": "target_distribution(600, 600, 1.5/600, seed=0)",
        "metrics": list(METRICS)}, "results": {}, "errors": {}}
    print(json.dumps(report["machine"]), flush=True)
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: nothing measured")
        return _write(report, out_dir)
    p0 = target_distribution(VOCAB, SUPPORT, S0, seed=0)
    p0_52 = target_distribution(VOCAB, 52, 1.5 / 52, seed=0)

    def step(name, fn):
        if time.perf_counter() - began > args.time_limit:
            report["errors"][name] = "skipped: time limit"
            return
        try:
            report["results"][name] = fn()
            print(f"done {name} ({time.perf_counter() - began:.0f} s)", flush=True)
        except Exception as exc:  # one failure must not lose the other numbers
            report["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()

    full = FullySynthetic(N_SAMPLES)
    # The goal numbers first, so that the time limit can only cut the extras.
    # At full size, so that no timed run pays the one-time costs of the first (the page-locked
    # staging buffers, the device allocator's growth).
    step("warm-up", lambda: run_torch(p0, full, runs, 5, device)["wall_s"])
    step("torch G=20", lambda: run_torch(p0, full, runs, 20, device))
    step("torch G=100", lambda: run_torch(p0, full, runs, 100, device, repeat=3))
    step("torch G=100 checks read at once", lambda: _checks_at_once(
        lambda: run_torch(p0, full, runs, 100, device, repeat=3)))
    step("torch G=100 generic route", lambda: run_torch(p0, full, runs, 100, device, fused=False))
    step("numpy cpu G=20", lambda: _numpy_row(p0, runs, 20))
    step("profile torch G=20", lambda: profile_generations(p0, full, runs, 20, device))
    step("host profile torch G=100", lambda: host_profile(p0, full, runs, 100, device))
    step("rng", lambda: rng_rates(device))
    step("torch G=1000", lambda: run_torch(p0, full, runs, 1000, device))
    step("torch G=100 all metrics", lambda: run_torch(p0, full, runs, 100, device, metrics=None))
    partial = PartiallySynthetic(N_SAMPLES, 100)
    step("torch partially-synthetic N=100 G=200",
         lambda: run_torch(p0, partial, runs, 200, device))
    step("torch partially-synthetic N=100 G=200 generic route",
         lambda: run_torch(p0, partial, runs, 200, device, fused=False))
    for n in CROSSOVER_N:
        # runs × n ≤ 10^8 tokens per model: a few models of them fit any large GPU.
        n_runs = min(runs, 10**8 // n)
        for mode in ("tokens", "counts"):
            step(f"torch n={n} support=52 G=10 {mode} ({n_runs} runs)",
                 lambda n=n, n_runs=n_runs, mode=mode: run_torch(
                     p0_52, FullySynthetic(n), n_runs, 10, device, representation=mode))
    _print_table(report)
    return _write(report, out_dir)


def profile_generations(p0, scenario, runs: int, generations: int, device: str,
                        top: int = 20) -> dict:
    """Where a generation's device time goes: torch.profiler over one run of the loop; the
    kernels (or CPU ops) with the most self time, their calls per generation, and totals."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    # Warm caches and allocator outside the profile, which sees the timed run alone.
    run_torch(p0, scenario, min(runs, 2000), 3, device, warm_up=False)
    _sync(device)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        run_torch(p0, scenario, runs, generations, device, warm_up=False)
        _sync(device)
    wall = time.perf_counter() - start
    # On CUDA count the kernels themselves: the CPU ops that launch them report the same
    # device time again.
    from torch.autograd import DeviceType

    if device.startswith("cuda"):
        kind = DeviceType.CUDA

        def self_us(e):
            return e.self_device_time_total
    else:
        kind = DeviceType.CPU

        def self_us(e):
            return e.self_cpu_time_total
    events = sorted((e for e in prof.key_averages()
                     if e.device_type == kind and self_us(e) > 0), key=self_us, reverse=True)
    total_us = sum(self_us(e) for e in events)
    return {"runs": runs, "generations": generations, "wall_s_profiled": wall,
            "self_time_total_ms": total_us / 1e3,
            "calls_per_generation": sum(e.count for e in events) / generations,
            "top": [{"name": e.key[:120], "calls_per_generation": e.count / generations,
                     "self_ms": self_us(e) / 1e3, "share": self_us(e) / total_us}
                    for e in events[:top]]}


def host_profile(p0, scenario, runs: int, generations: int, device: str, top: int = 25) -> dict:
    """Where the host's time goes: cProfile over one run of the loop. The device works
    asynchronously, so time the host spends waiting for it shows up in the calls that copy
    results back (``cpu``, ``numpy``); the rest is host work the device may be waiting for."""
    import cProfile
    import pstats

    # Warm caches and allocator outside the profile, which sees the timed run alone.
    run_torch(p0, scenario, min(runs, 2000), 3, device, warm_up=False)
    _sync(device)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    run_torch(p0, scenario, runs, generations, device, warm_up=False)
    _sync(device)
    profiler.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, _)

    def rows(key_index: int) -> list[dict]:
        ranked = sorted(stats.items(), key=lambda kv: kv[1][key_index], reverse=True)[:top]
        return [{"function": f"{Path(f).name}:{line}({name})", "calls": nc,
                 "self_ms": 1e3 * tt, "cumulative_ms": 1e3 * ct}
                for (f, line, name), (_, nc, tt, ct, _) in ranked]

    return {"runs": runs, "generations": generations, "wall_s_profiled": wall,
            "by_self_time": rows(2), "by_cumulative_time": rows(3)}


def _checks_at_once(fn):
    """``fn()`` with the fused route reading each check at once, which waits for the device
    (``engine.torch.backend.LAGGED_CHECKS`` off): the baseline of the lagged checks."""
    saved = dict(torch_engine.LAGGED_CHECKS)
    torch_engine.LAGGED_CHECKS.update(cuda=False)
    try:
        return fn()
    finally:
        torch_engine.LAGGED_CHECKS.update(saved)


def _numpy_row(p0, runs: int, generations: int) -> dict:
    start = time.perf_counter()
    simulate(p0=p0, scenario=FullySynthetic(N_SAMPLES), runs=runs, generations=generations,
             seed=1, metrics=METRICS, threads=1, trajectories="none")
    wall = time.perf_counter() - start
    trials = runs * generations * N_SAMPLES
    return {"runs": runs, "generations": generations, "n": N_SAMPLES, "wall_s": wall,
            "trials": trials, "rate_wall": trials / wall}


def _print_table(report: dict) -> None:
    res = report["results"]
    hardware = report["machine"].get("gpu", report["machine"]["cpu"])
    print(f"\ndevice: {report['device']} ({hardware})")
    print(f"{'case':52} {'wall s':>8} {'trials/s wall':>14} {'alive':>6} "
          f"{'eq.6/9 max|z|':>13}")
    for name, row in res.items():
        if not isinstance(row, dict) or "rate_wall" not in row:
            continue
        z = row.get("eq6_max_abs_z", row.get("eq9_max_abs_z"))
        z = f"{z:13.1f}" if z is not None else f"{'':13}"
        alive = f"{row['alive']:6.0%}" if "alive" in row else f"{'':6}"
        print(f"{name:52} {row['wall_s']:8.2f} {row['rate_wall']:14.3g} {alive} {z}")
    ratios = {}
    if "numpy cpu G=20" in res:
        base = res["numpy cpu G=20"]["rate_wall"]
        for name in ("torch G=20", "torch G=100", "torch G=100 generic route", "torch G=1000"):
            if name in res:
                ratios[f"{name} / numpy cpu G=20 (wall)"] = res[name]["rate_wall"] / base
    lagged = report["device"].startswith("cuda")  # LAGGED_CHECKS is on only there
    if lagged and "torch G=100" in res and "torch G=100 checks read at once" in res:
        ratios["lagged checks / checks read at once, G=100 (wall)"] = (
            res["torch G=100"]["rate_wall"] / res["torch G=100 checks read at once"]["rate_wall"])
    report["ratios"] = ratios
    for name, value in ratios.items():
        print(f"  {name:50} {value:8.1f}×")
    if "rng" in res:
        print("raw generator throughput (numbers per second)")
        for name, rate in res["rng"].items():
            print(f"  {name:50} {rate:10.3g}")
    for name, err in report["errors"].items():
        print(f"  FAILED {name}: {err}")


def _write(report: dict, out_dir: Path) -> dict:
    path = out_dir / "gpu_engines.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
