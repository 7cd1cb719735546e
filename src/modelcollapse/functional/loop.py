"""The recursive train-generate loop of the softmax model on context embeddings (paper §2.2,
eq. 5, with eq. 1's fit in place of eq. 2's counting).

Per generation m, for every run still simulated: the training counts of model m (eq. 5,
:mod:`.history`), a batched fit of all runs (:mod:`.solvers`, warm-started from model m − 1
for Newton), the metrics of every (run, context) — the statistical loop's names
(:mod:`modelcollapse.metrics`) — into a :class:`~modelcollapse.engine.recorder.Recorder`, so
the :class:`~modelcollapse.results.Result` is the statistical loop's, and plots, reports,
save and load work unchanged.

Collapse needs a tolerance: a softmax never puts mass exactly 0 on a token. A context is
*collapsed* when ‖p‖∞ ≥ 1 − ε (``collapse_tolerance``); ``collapse_time`` is the first such m
(it may un-collapse later when λ > 0 or contexts share parameters: the σ_m trajectory shows
it). ``support`` counts tokens with p > ε / s.

λ = 0 "to tolerance". A context whose data hold one token has its optimum at infinity; the fit
stops at the gradient tolerance, a hair from the Dirac mass. Such a collapsed context is then
sampled as the Dirac mass it tends to, exactly as the count model samples its Dirac (eq. 2):
without this, the 10⁻⁸-sized leftovers of the other tokens would be redrawn once in a long
while. A run whose every context is so collapsed, with the same tokens in every model its next
data can come from and no real data coming in, is *absorbed*: its data, hence its fit, never
change again; it leaves the batch and its constant metrics enter the recorder once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .._validation import InputError
from ..engine.recorder import Recorder, kept_runs, metric_shift
from ..metrics import METRICS, distribution_metrics
from ..results import Result, build_result
from ..rng import keyed_generator, resolve_entropy
from .history import CountHistory
from .model import Embeddings, make_embeddings, make_p0
from .solvers import FitStats, LogitObjective, SoftmaxObjective, fit
from .spec import FunctionalSpec

__all__ = ["FitLog", "build_problem", "run", "structure_generator"]

#: Streams of the structure (embeddings, p(0)), from ``distribution_seed`` (default: seed).
EMBEDDING_STREAM, P0_STREAM = 26, 27


def structure_generator(spec: FunctionalSpec, entropy: int, stream: int) -> np.random.Generator:
    root = spec.distribution_seed if spec.distribution_seed is not None else entropy
    return keyed_generator(root, stream)


def build_problem(spec: FunctionalSpec, entropy: int) -> tuple[Embeddings, np.ndarray]:
    """The embeddings and p(0) (contexts, vocab) of ``spec``: each from its own stream, so p(0)
    of family ``logits`` (or a statistical family) is the same for every d."""
    embeddings = make_embeddings(spec.embedding, spec.contexts, spec.dim,
                                 structure_generator(spec, entropy, EMBEDDING_STREAM))
    p0 = make_p0(spec.family, embeddings, spec.vocab,
                 structure_generator(spec, entropy, P0_STREAM), scale=spec.p0_scale,
                 support=spec.support, S0=spec.S0, zipf_exponent=spec.zipf_exponent,
                 dirichlet_alpha=spec.dirichlet_alpha)
    return embeddings, p0


@dataclass
class FitLog:
    """Solver cost per generation: Newton iterations of the slowest run, whole-batch passes
    over the data, runs not converged, runs fitted, seconds."""

    iterations: list[int] = field(default_factory=list)
    passes: list[float] = field(default_factory=list)
    unconverged: list[int] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"The 'device' parameter of functional is {name!r}, but no CUDA device "
                         f"is available: use cpu.")
    return torch.device(name)


def run(spec: FunctionalSpec | dict, *, seed: int | np.random.SeedSequence | None = None,
        progress: bool | None = None) -> Result:
    """Simulate the recursive loop of ``spec`` (a :class:`FunctionalSpec` or its fields).

    ``seed`` wins over ``spec.seed``. The Result is the statistical loop's (dims run,
    context, generation, token), with attributes ``functional`` (the spec, the embeddings'
    rank, the solver's cost per generation) and ``seconds``.
    """
    import torch

    if not isinstance(spec, FunctionalSpec):
        spec = FunctionalSpec(**spec)
    entropy = resolve_entropy(seed if seed is not None else spec.seed)
    device = resolve_device(spec.device)
    scenario = spec.build_scenario()
    embeddings, p0 = build_problem(spec, entropy)
    R, c, s, G = spec.runs, spec.contexts, spec.vocab, spec.generations
    names = METRICS
    at_p0 = distribution_metrics(p0, None, p0, names)
    at_p0["support"] = np.count_nonzero(p0 > spec.collapse_tolerance / s, axis=1).astype(float)
    at_p0["collapsed"] = p0.max(axis=1) >= 1.0 - spec.collapse_tolerance
    keep, _ = kept_runs(spec.trajectories, n_runs=R, n_contexts=c, n_generations=G,
                        n_metrics=len(names), where="functional")
    recorder = Recorder(R * c, c, G, names, metric_shift(at_p0, names), keep * c)
    recorder.begin_chunk(slice(0, R * c))
    recorder.record(0, slice(0, R * c), {k: np.tile(v, R) for k, v in at_p0.items()})

    dtype = torch.float64
    xt = torch.tensor(embeddings.reduced, dtype=dtype, device=device)
    history = CountHistory(scenario, p0, np.arange(R), entropy)
    alive = np.arange(R)
    newton = spec.solver in ("auto", "newton")
    # λ = 0 with embeddings of rank c: the model gives each context any logits it likes, so
    # Newton works in the logits, where the fit separates by context (solvers.LogitObjective),
    # and the infimum of the fit is each context's empirical frequency (eq. 2): the limit the
    # solver reaches to its tolerance (tests/functional), which ``auto`` takes exactly.
    in_logits = newton and embeddings.rank == c and spec.weight_decay == 0.0
    exact = in_logits and spec.solver == "auto"
    b = torch.zeros((R, s, c if in_logits else embeddings.rank), dtype=dtype, device=device)
    kinv = None
    first = None
    collapse_time = np.full(R * c, np.nan)
    absorption_time = np.full(R * c, np.nan)
    absorbed_token = np.full(R * c, -1, dtype=np.int64)
    lam, eps = spec.weight_decay, spec.collapse_tolerance
    lag = scenario.lag
    can_absorb = lam == 0.0 and not scenario.uses_real and lag is not None
    window: list[np.ndarray] = []  # Dirac tokens (runs, contexts) of recent models, −1: none
    log = FitLog()
    started = time.perf_counter()
    bar = tqdm(total=G, unit="gen", desc=f"functional d={spec.dim} λ={lam:g}",
               disable=None if progress is None else not progress, leave=False)
    for m in range(1, G + 1):
        tick = time.perf_counter()
        counts = history.training_counts(m)  # (runs, contexts, vocab)
        tensor = torch.tensor(counts.transpose(0, 2, 1), dtype=dtype, device=device)
        if exact:
            p, stats = counts / counts.sum(axis=2, keepdims=True), FitStats()
        else:
            if in_logits:
                objective = LogitObjective(xt, tensor, lam, kinv)
                kinv = objective.kinv
            else:
                objective = SoftmaxObjective(xt, tensor, lam)
            start = b if newton else torch.zeros_like(b)
            b, stats = fit(objective, start, solver=spec.solver, tol=spec.tol,
                           max_iter=spec.max_iter, steps=spec.gd_steps)
            p = torch.softmax(objective.logits(b), dim=1).transpose(1, 2).cpu().numpy()
            p = np.ascontiguousarray(p)  # (runs, contexts, vocab)
        log.iterations.append(stats.iterations)
        log.passes.append(stats.passes)
        log.unconverged.append(stats.unconverged)
        log.runs.append(len(alive))
        if first is None:
            first = p
        rows_p = p.reshape(-1, s)
        values = distribution_metrics(rows_p, first.reshape(-1, s),
                                      np.broadcast_to(p0, p.shape).reshape(-1, s), names)
        top = rows_p.max(axis=1)
        values["collapsed"] = top >= 1.0 - eps
        values["support"] = np.count_nonzero(rows_p > eps / s, axis=1).astype(float)
        rows = (alive[:, None] * c + np.arange(c)).ravel()
        recorder.record(m, rows, values)
        newly = values["collapsed"] & np.isnan(collapse_time[rows])
        collapse_time[rows[newly]] = m
        # λ = 0: a collapsed context is sampled as the Dirac mass it tends to.
        dirac = np.where(values["collapsed"], rows_p.argmax(axis=1), -1).reshape(len(alive), c)
        sample = p
        if lam == 0.0 and (dirac >= 0).any():
            sample = p.copy()
            hit = dirac >= 0
            sample[hit] = 0.0
            r_idx, c_idx = np.nonzero(hit)
            sample[r_idx, c_idx, dirac[hit]] = 1.0
        history.store(m, sample)
        if can_absorb:
            window = [*window[-(lag - 1):], dirac] if lag > 1 else [dirac]
            done = _absorbed(window, dirac, counts, lag, m)
            if done.any() and m < G:
                gone = alive[done]
                gone_rows = (gone[:, None] * c + np.arange(c)).ravel()
                mask = np.repeat(done, c)
                recorder.settle(gone_rows, m, {k: v[mask] for k, v in values.items()})
                absorption_time[gone_rows] = m
                absorbed_token[gone_rows] = dirac[done].ravel()
                keep_mask = ~done
                alive, b, first = alive[keep_mask], b[torch.as_tensor(keep_mask)], first[keep_mask]
                window = [w[keep_mask] for w in window]
                history.keep(keep_mask)
        log.seconds.append(time.perf_counter() - tick)
        bar.update(1)
        if len(alive) == 0:
            bar.update(G - m)
            break
    bar.close()
    recorder.end_chunk()
    recorder.outcomes["collapse_time"][:] = collapse_time
    recorder.outcomes["absorption_time"][:] = absorption_time
    recorder.outcomes["absorbed_token"][:] = absorbed_token
    token_ids = np.tile(np.arange(s), (c, 1))
    result = build_result(recorder, p0, token_ids, R, c, names, scenario=scenario,
                          entropy=entropy, spec=spec.model_dump())
    result.data.attrs["functional"] = _attrs(spec, embeddings, log, device)
    result.data.attrs["seconds"] = time.perf_counter() - started
    return result


def _absorbed(window: list[np.ndarray], dirac: np.ndarray, counts: np.ndarray, lag: int,
              m: int) -> np.ndarray:
    """Runs (rows of ``dirac``, runs × contexts) whose every context's last ``lag`` models are
    the same Dirac mass and whose model m already trained on that mass alone: every later
    training set is the same, so every later model is model m."""
    if m < lag:
        return np.zeros(dirac.shape[0], dtype=bool)
    same = np.all([w == dirac for w in window], axis=0) & (dirac >= 0)
    on_dirac = np.take_along_axis(counts, np.maximum(dirac, 0)[:, :, None], axis=2)[:, :, 0]
    same &= on_dirac == counts.sum(axis=2)
    return same.all(axis=1)


def _attrs(spec: FunctionalSpec, embeddings: Embeddings, log: FitLog, device) -> str:
    import json

    return json.dumps({
        "rank": embeddings.rank, "separable": bool(embeddings.separable),
        "device": str(device), "solver": spec.solver,
        "iterations": log.iterations, "passes": [round(x, 2) for x in log.passes],
        "unconverged": log.unconverged, "runs_fitted": log.runs,
        "seconds": [round(x, 4) for x in log.seconds],
        "max_unconverged": max(log.unconverged, default=0),
        "total_passes": round(math.fsum(log.passes), 2),
    })
