"""What a transformer run will write and hold, estimated before any work, and the refusal
when that is more than the machine has.

Every generation writes its weights (``model.pt``), p(m) at the fixed contexts
(``probs.npy``), its records (JSON) and, when a later model reads it, the text it generated
(``corpus.npy``); all of these follow from the preset, the vocabulary and eq. 5's counts.
The largest memory the loop needs grows with the largest training set: the window sampler
holds its tokens as int64 (8 bytes each) beside the corpora they were cut from; an
``accumulate`` model m trains on N + (m − 1) n tokens. The estimate reads eq. 5's rows
directly up to :data:`DIRECT_ROWS` and extrapolates linearly beyond (exact for counts affine
in m, as every built-in scenario's are once m passes its lag), so it costs the same for ten
generations as for a billion. tests/lm/test_lm_refusals.py checks it against the bytes a run
writes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..corpus import token_dtype
from ..engine.footprint import USABLE_SHARE, check_fits, format_bytes
from ..scenarios import Scenario
from .plan import plan_row, stream_unit
from .presets import Preset
from .result import gen_dir

__all__ = [
    "DIRECT_ROWS",
    "RunFootprint",
    "check_footprints",
    "estimate_run",
    "generations_done",
    "real_tokens_needed",
    "weights_bytes",
]

#: Rows of eq. 5 read exactly; per-model quantities beyond are extrapolated linearly.
DIRECT_ROWS = 256
#: torch.save's bytes per tensor beyond its data (zip entry, pickled name and metadata).
TENSOR_OVERHEAD_BYTES = 400
#: ``np.save``'s header.
NPY_HEADER_BYTES = 128
#: JSON per number a generation records (model.json's validation curve and start
#: probabilities, result.json's entry): a float's repr, indentation and separators.
JSON_NUMBER_BYTES = 24
#: JSON per data slice model.json lists (its generation, start, stop and kind).
JSON_SEGMENT_BYTES = 90
#: Fixed JSON per generation: keys and short fields of model.json, corpus.json, result.json.
JSON_GENERATION_BYTES = 1_500
#: Host bytes per token of a training set while the sampler is built: the int64 copy it
#: keeps (8), the concatenation it is made from and the corpora it is cut from (1 each for
#: character tokens).
SAMPLER_INT64_BYTES = 8
#: Copies of the weights a training step holds: weights, gradients, AdamW's two moments.
TRAINING_WEIGHT_COPIES = 4


#: The run's figure (run.png): a PNG of line plots, measured at 61-72 KB for runs of 3 to 4
#: models; each model adds a validation-loss curve and a legend line.
FIGURE_BASE_BYTES, FIGURE_MODEL_BYTES = 55_000, 5_000


def summary_bytes(n_generations: int) -> float:
    """What a finished run writes beside its checkpoints: its figure, and the decoded text
    samples of each generation (:func:`~modelcollapse.lm.plots.write_samples`; a header line
    and the first streams' first characters, one byte each for character tokens)."""
    from .plots import SAMPLE_CHARS, SAMPLE_STREAMS

    models = n_generations + 1
    samples = models * (60 + SAMPLE_STREAMS * (SAMPLE_CHARS + 5))
    return FIGURE_BASE_BYTES + FIGURE_MODEL_BYTES * models + samples


def weights_bytes(preset: Preset, vocab_size: int) -> int:
    """Bytes of a saved ``model.pt``: the state dict of :class:`~modelcollapse.lm.gpt.GPT`
    (float32; the tied embedding is saved under both its names) and torch.save's overhead."""
    C, L, V, T = preset.n_embd, preset.n_layer, vocab_size, preset.block_size
    bias = 1 if preset.bias else 0
    per_block = 12 * C * C + 2 * C + bias * 11 * C  # attention, MLP, two LayerNorms
    floats = 2 * V * C + T * C + L * per_block + C * (1 + bias)
    tensors = 4 + L * (6 + 6 * bias) + bias
    return 4 * floats + TENSOR_OVERHEAD_BYTES * tensors


@dataclass(frozen=True)
class RunFootprint:
    """What one run will write and hold, in bytes, estimated before any work."""

    models: int              # models still to train (those not yet on disk)
    model_bytes: float       # per model: weights, p(m) at the contexts, records
    text_bytes: float        # generated text of those generations
    memory: float            # host memory at the peak (the largest training set)
    device_memory: float     # on CUDA: the largest training set as int64, weights and state
    largest: int             # the model with the largest training set
    largest_tokens: float    # its tokens

    @property
    def disk(self) -> float:
        return self.models * self.model_bytes + self.text_bytes


def _series_sum(value: Callable[[int], float], a: int, b: int) -> float:
    """Σ value(m) for m = a … b: exact up to :data:`DIRECT_ROWS`, extrapolated linearly
    from rows DIRECT_ROWS / 2 and DIRECT_ROWS beyond."""
    if a > b:
        return 0.0
    total = sum(value(m) for m in range(a, min(b, DIRECT_ROWS) + 1))
    lo = max(a, DIRECT_ROWS + 1)
    if lo <= b:
        at = _extrapolation(value)
        total += (b - lo + 1) * (at(lo) + at(b)) / 2
    return float(total)


def _extrapolation(value: Callable[[int], float]) -> Callable[[int], float]:
    """``value`` itself up to :data:`DIRECT_ROWS`, its line through rows DIRECT_ROWS / 2 and
    DIRECT_ROWS beyond (those rows are read only then)."""
    m1, m2 = DIRECT_ROWS // 2, DIRECT_ROWS

    def at(m: int) -> float:
        if m <= m2:
            return value(m)
        v1, v2 = value(m1), value(m2)
        return max(0.0, v2 + (v2 - v1) / (m2 - m1) * (m - m2))

    return at


class _Rows:
    """Per-model quantities from eq. 5's rows, each row read once."""

    def __init__(self, scenario: Scenario, unit: Callable[[int], int], real: str):
        self.scenario, self.unit, self.real = scenario, unit, real
        self._cache: dict[int, tuple[float, float, float, float]] = {}

    def _row(self, m: int) -> tuple[float, float, float, float]:
        """(tokens model m trains on, tokens of generated text it is the first to read, of
        which from generation 0, data slices)."""
        if m not in self._cache:
            ts, counts = plan_row(self.scenario, m, self.unit)
            scen, new, new0 = self.scenario, 0.0, 0.0
            for t, count in zip(ts.tolist(), counts.tolist(), strict=True):
                reused = scen.real == "corpus" if t == 0 else scen.keeps_published
                if t == 0 and self.real == "text":
                    continue  # the real text, not generated
                if reused and t != m - 1:
                    continue  # published once, for its first reader
                if t == 0 and reused and scen.corpus_size() > 0:
                    u = self.unit(0)
                    count = max(count, -(-int(scen.corpus_size()) // u) * u)
                new += count
                new0 += count if t == 0 else 0.0
            self._cache[m] = (float(counts.sum()), new, new0, float(len(ts)))
        return self._cache[m]

    def size(self, m: int) -> float:
        return self._row(m)[0]

    def new(self, m: int) -> float:
        return self._row(m)[1]

    def new_real(self, m: int) -> float:
        return self._row(m)[2]

    def segments(self, m: int) -> float:
        return self._row(m)[3]


def real_tokens_needed(scenario: Scenario, n_generations: int, unit: Callable[[int], int]
                       ) -> float:
    """Tokens of the real text that models 1 … M read when it is generation 0's data."""
    rows = _Rows(scenario, unit, "p0")
    if scenario.real == "corpus":
        return max(float(scenario.corpus_size()), rows.new_real(1))
    return _series_sum(rows.new_real, 1, n_generations)


def estimate_run(scenario: Scenario, n_generations: int, preset: Preset, *, vocab_size: int,
                 train_tokens: int, real: str, done: int = 0) -> RunFootprint:
    """Bytes a run of models ``done`` … ``n_generations`` writes, and the memory it needs."""
    M, L = n_generations, preset.window_stream_length
    isz = token_dtype(vocab_size).itemsize
    unit = stream_unit(real, L)
    rows = _Rows(scenario, unit, real)
    weights = weights_bytes(preset, vocab_size)
    probs = NPY_HEADER_BYTES + 8 * preset.n_contexts * vocab_size
    numbers = 6 * preset.n_evals + vocab_size
    per_model = weights + probs + JSON_GENERATION_BYTES + JSON_NUMBER_BYTES * numbers
    first = max(done, 1)
    text_tokens = _series_sum(rows.new, first, M)
    slices = _series_sum(rows.segments, first, M)
    text = isz * text_tokens + (NPY_HEADER_BYTES + 400) * max(0, M - first + 1)
    extra = JSON_SEGMENT_BYTES * slices
    if done == 0:
        extra += NPY_HEADER_BYTES + isz * preset.n_contexts * preset.block_size  # contexts
    extra += summary_bytes(M)
    # The largest training set: p(0)'s (the real text), then models 1, 2 and M.
    at = _extrapolation(rows.size)
    largest, largest_tokens = 0, float(train_tokens)
    for m in sorted({1, min(2, M), min(M, DIRECT_ROWS), M}):
        if at(m) > largest_tokens:
            largest, largest_tokens = m, at(m)
    # Generation 0's text stays in memory while every model reads it (fresh real data).
    real_held = isz * _series_sum(rows.new_real, 1, M) if scenario.uses_real else 0.0
    states = TRAINING_WEIGHT_COPIES * weights
    memory = (SAMPLER_INT64_BYTES + 2 * isz) * largest_tokens + real_held + states
    device = SAMPLER_INT64_BYTES * largest_tokens + states
    models = max(0, M + 1 - done)
    return RunFootprint(models=models, model_bytes=per_model,
                        text_bytes=text + extra, memory=memory, device_memory=device,
                        largest=largest, largest_tokens=largest_tokens)


def generations_done(out: str | Path, n_generations: int) -> int:
    """How many generations 0, 1, … a run folder already holds (each with its model)."""
    out = Path(out)
    if not out.is_dir():
        return 0
    names = {entry.name for entry in os.scandir(out)}
    done = 0
    while done <= n_generations and gen_dir(out, done).name in names and \
            (gen_dir(out, done) / "model.json").exists():
        done += 1
    return done


def _writable_ancestor(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _free_device_memory(device: str) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    try:
        free, _ = torch.cuda.mem_get_info(torch.device(device))
    except RuntimeError:  # pragma: no cover - a device that cannot be queried
        return None
    return float(free)


def check_footprints(footprints: Sequence[RunFootprint], *, out: str | Path, device: str,
                     concurrent: int = 1, where: str = "lm.run",
                     generations: str = "n_generations") -> None:
    """Refuse, in one line that names the size and the way out, runs whose memory (the
    ``concurrent`` largest at once) or disk (all of them) is more than the machine has."""
    which = f" of one of the {len(footprints)} runs" if len(footprints) > 1 else ""
    peak = max(footprints, key=lambda f: f.memory)
    memory = sum(sorted((f.memory for f in footprints), reverse=True)[:concurrent])
    how = (f"fewer '{generations}', a smaller 'corpus_tokens', or a scenario that does not "
           f"keep every generation's text")
    check_fits(int(memory), what="the largest training set",
               detail=f"model {peak.largest:,}{which} trains on {peak.largest_tokens:,.0f} "
                      f"tokens, {SAMPLER_INT64_BYTES + 2} bytes each while its batches are "
                      f"drawn", way_out=how, where=where)
    free_device = _free_device_memory(device)
    device_need = max(f.device_memory for f in footprints)
    if free_device is not None and device_need > USABLE_SHARE * free_device:
        raise ValueError(
            f"{where} would need about {format_bytes(device_need)} of {device} memory "
            f"(model {peak.largest:,} trains on {peak.largest_tokens:,.0f} tokens, "
            f"{SAMPLER_INT64_BYTES} bytes each on the device), more than the "
            f"{format_bytes(USABLE_SHARE * free_device)} free there: choose {how}.")
    disk = sum(f.disk for f in footprints)
    probe = _writable_ancestor(Path(out).absolute())
    free = float(shutil.disk_usage(probe).free)
    if disk > free:
        models = sum(f.models for f in footprints)
        per_model = max(f.model_bytes for f in footprints)
        text = sum(f.text_bytes for f in footprints)
        raise ValueError(
            f"{where} would write about {format_bytes(disk)} ({models:,} models × "
            f"{format_bytes(per_model)} of weights, p(m) and records, and "
            f"{format_bytes(text)} of generated text), more than the {format_bytes(free)} "
            f"free on the disk of {str(probe)!r}: choose fewer '{generations}', a smaller "
            f"'preset' or 'corpus_tokens', or an 'out' folder on a larger disk.")
