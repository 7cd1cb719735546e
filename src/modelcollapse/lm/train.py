"""Training one generation's model: window sampling, the AdamW schedule, validation loss.

Schedule (nanoGPT's character-level Shakespeare recipe, which the paper's Table 1 follows):
linear warm-up to ``learning_rate`` over ``warmup_iters``, cosine decay to ``min_lr`` at
``max_iters``; AdamW with β = (0.9, 0.99) and weight decay on weight matrices and
embeddings only; gradient norm clipped to ``grad_clip``. On CUDA the forward pass runs under
bf16 autocast and is compiled with ``torch.compile``; on CPU everything is float32, eager.

One :class:`Engine` owns one model for a whole run (and across runs of one figure): every
generation reinitialises its weights in place, so the compiled code is reused instead of
being rebuilt 30 times.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .._validation import check_choice
from . import _seeds
from .gpt import GPT
from .presets import Preset

__all__ = [
    "Engine",
    "TrainRecord",
    "WindowSampler",
    "eval_points",
    "lr_at",
    "validation_windows",
]


def lr_at(it: int, preset: Preset) -> float:
    """Learning rate of iteration ``it`` (0-based): warm-up, then cosine decay to min_lr."""
    if it < preset.warmup_iters:
        return preset.learning_rate * (it + 1) / (preset.warmup_iters + 1)
    span = max(1, preset.max_iters - preset.warmup_iters)
    ratio = min(1.0, (it - preset.warmup_iters) / span)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return preset.min_lr + coeff * (preset.learning_rate - preset.min_lr)


def eval_points(max_iters: int, n_evals: int) -> list[int]:
    """Iteration counts at which validation loss is measured: log-spaced in [1, max_iters]
    (Fig. 5 plots the curves on a log axis), always including the last iteration."""
    points = np.unique(np.round(np.geomspace(1, max_iters, n_evals)).astype(int))
    return [int(p) for p in points]


def validation_windows(val: np.ndarray, block_size: int, max_tokens: int | None) -> np.ndarray:
    """Non-overlapping windows (k, block_size + 1) of the validation tokens, evenly spread
    over the split; ``max_tokens`` caps k · block_size (None: the whole split)."""
    k = (len(val) - 1) // block_size
    if k < 1:
        raise ValueError(f"The validation split has {len(val)} tokens; at least "
                         f"{block_size + 1} are needed for one window.")
    if max_tokens is not None:
        k_max = max(1, max_tokens // block_size)
        starts = np.linspace(0, k - 1, min(k, k_max)).round().astype(int) * block_size
    else:
        starts = np.arange(k) * block_size
    return np.stack([val[s: s + block_size + 1] for s in starts])


class WindowSampler:
    """Random training windows from a weighted mixture of token sources.

    Each source is a (streams, length) array: the real text is one long stream, a
    synthetic corpus is many short ones. A window of block_size + 1 tokens is drawn by
    choosing a source with probability ∝ its weight (its token count n_t^(m), eq. 5, so
    every training token is seen about equally often), a stream uniformly, and a start
    uniformly among the length − block_size positions of that stream: windows never cross
    stream boundaries. All draws happen on the device, from one seeded generator.
    """

    def __init__(self, sources: Sequence[np.ndarray], weights: Sequence[float],
                 block_size: int, device: torch.device | str):
        if len(sources) != len(weights) or not sources:
            raise ValueError("WindowSampler needs one weight per source, and a source.")
        self.block_size = block_size
        self.device = torch.device(device)
        bases, lengths, counts = [], [], []
        offset = 0
        for src in sources:
            if src.ndim != 2 or src.shape[1] < block_size + 1 or src.shape[0] < 1:
                raise ValueError(f"A training source has shape {src.shape}; streams of at "
                                 f"least block_size + 1 = {block_size + 1} tokens are needed.")
            bases.append(offset)
            lengths.append(src.shape[1])
            counts.append(src.shape[0])
            offset += src.size
        flat = np.concatenate([np.ascontiguousarray(s).reshape(-1) for s in sources])
        self.flat = torch.from_numpy(flat.astype(np.int64)).to(self.device)  # (total,)
        self.base = torch.tensor(bases, dtype=torch.int64, device=self.device)
        self.length = torch.tensor(lengths, dtype=torch.int64, device=self.device)
        self.n_streams = torch.tensor(counts, dtype=torch.float64, device=self.device)
        self.n_starts = (self.length - block_size).to(torch.float64)
        w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
        if torch.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"Source weights must be non-negative with a positive sum; "
                             f"got {list(weights)}.")
        self.weights = (w / w.sum()).to(self.device)
        self.arange = torch.arange(block_size + 1, device=self.device)

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets, each (batch, block_size), int64, on the device."""
        if len(self.weights) == 1:
            src = torch.zeros(batch, dtype=torch.int64, device=self.device)
        else:
            src = torch.multinomial(self.weights, batch, replacement=True, generator=generator)
        u = torch.rand(batch, 2, dtype=torch.float64, device=self.device, generator=generator)
        stream = (u[:, 0] * self.n_streams[src]).long()  # (batch,)
        start = (u[:, 1] * self.n_starts[src]).long()  # (batch,)
        first = self.base[src] + stream * self.length[src] + start  # (batch,)
        window = self.flat[first[:, None] + self.arange]  # (batch, block + 1)
        return window[:, :-1], window[:, 1:]


@dataclass
class TrainRecord:
    """What training one model measured."""

    iters: list[int]                 # iteration counts of the validation points
    val_loss: list[float]            # validation loss (nats/token) at those points
    train_loss: list[float]          # mean training loss since the previous point
    seconds: float                   # wall time of the optimisation (without validation)
    eval_seconds: float              # wall time of the validation passes
    tokens_per_second: float         # training tokens / seconds
    extra: dict = field(default_factory=dict)

    @property
    def final_val_loss(self) -> float:
        return self.val_loss[-1]


#: torch.compile modes an Engine accepts; those in CUDA_GRAPH_MODES replay CUDA graphs on CUDA.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


class Engine:
    """One model on one device, reused (reinitialised) for every generation.

    ``compile`` and ``autocast`` default to on for CUDA and off elsewhere: on a CPU bf16 is
    slower than float32 and ``torch.compile`` gains nothing for models this small.
    ``compile_mode`` is torch.compile's mode. The default, "reduce-overhead", replays CUDA
    graphs: launched one by one from the host, this small model's ~360 kernels per step left
    an H100 idle half the time (17.5 ms per step against 7.9 ms of kernels), replayed they
    keep it busy (8.1 ms). Each training step then tells torch a new step begins, since a
    replay overwrites the previous step's outputs.
    """

    def __init__(self, preset: Preset, vocab_size: int, *, device: str | torch.device = "cpu",
                 compile: bool | None = None, autocast: bool | None = None,
                 compile_mode: str = "reduce-overhead"):
        check_choice(compile_mode, "compile_mode", COMPILE_MODES, where="lm.Engine")
        self.preset = preset
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        if cuda and not torch.cuda.is_available():
            raise ValueError("The 'device' parameter is 'cuda' but no CUDA device is available.")
        self.config = preset.model_config(vocab_size)
        self.model = GPT(self.config).to(self.device)
        compiled = cuda if compile is None else compile
        self.compiled = torch.compile(self.model, mode=compile_mode) if compiled else self.model
        self._graph_steps = compiled and cuda and compile_mode in CUDA_GRAPH_MODES
        self.use_autocast = cuda if autocast is None else autocast

    def _forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch through the compiled model."""
        if self._graph_steps:
            torch.compiler.cudagraph_mark_step_begin()
        with self.autocast():
            _, loss = self.compiled(x, y)
        return loss

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.use_autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _seeded_dropout(self, seed: int) -> contextlib.AbstractContextManager:
        """Dropout (and torch.compile's RNG) draw from the device's default generator, which
        accepts no explicit generator: seed it inside fork_rng, which restores the caller's
        state afterwards."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        stack = contextlib.ExitStack()
        stack.enter_context(torch.random.fork_rng(devices=devices,
                                                  device_type=self.device.type))
        if self.device.type == "cuda":
            torch.cuda.manual_seed(seed)
        else:
            torch.random.default_generator.manual_seed(seed)
        return stack

    def optimizer(self) -> torch.optim.Optimizer:
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": self.preset.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        fused = {"fused": True} if self.device.type == "cuda" else {}
        return torch.optim.AdamW(groups, lr=self.preset.learning_rate,
                                 betas=(self.preset.beta1, self.preset.beta2), **fused)

    @torch.no_grad()
    def evaluate(self, windows: torch.Tensor, batch: int | None = None) -> float:
        """Mean cross-entropy (nats/token) over windows (k, block_size + 1) on the device."""
        self.model.eval()
        batch = batch or self.preset.batch_size
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for i in range(0, len(windows), batch):
            w = windows[i: i + batch]
            with self.autocast():
                _, loss = self.model(w[:, :-1], w[:, 1:])
            total += loss.double() * len(w)
        return float(total) / len(windows)

    def train(self, sampler: WindowSampler, *, entropy: int, generation: int,
              val_windows: torch.Tensor, progress=None) -> TrainRecord:
        """Reinitialise and train the model of ``generation`` on windows from ``sampler``.

        ``progress(k)`` is called with the number of iterations done since the last call.
        """
        p = self.preset
        dev = self.device
        self.model.reset_parameters(
            _seeds.torch_generator(entropy, _seeds.INIT, generation, device=dev))
        batches = _seeds.torch_generator(entropy, _seeds.BATCHES, generation, device=dev)
        opt = self.optimizer()
        points = eval_points(p.max_iters, p.n_evals)
        record = TrainRecord([], [], [], 0.0, 0.0, 0.0)
        params = [q for q in self.model.parameters()]
        loss_sum = torch.zeros((), dtype=torch.float32, device=dev)
        since, last_point = 0, 0
        with self._seeded_dropout(_seeds.torch_seed(entropy, _seeds.DROPOUT, generation)):
            start = time.perf_counter()
            for it in range(p.max_iters):
                loss_sum += self.train_step(opt, params, sampler, batches, it).float()
                since += 1
                if it + 1 in points:  # the only places that wait for the device
                    record.train_loss.append(float(loss_sum) / since)
                    loss_sum.zero_()
                    since = 0
                    record.seconds += time.perf_counter() - start
                    t0 = time.perf_counter()
                    record.iters.append(it + 1)
                    record.val_loss.append(self.evaluate(val_windows))
                    record.eval_seconds += time.perf_counter() - t0
                    if progress is not None:
                        progress(it + 1 - last_point)
                    last_point = it + 1
                    start = time.perf_counter()
        self.model.eval()
        tokens = p.max_iters * p.batch_size * p.block_size
        record.tokens_per_second = tokens / record.seconds if record.seconds > 0 else float("nan")
        del opt
        return record

    def train_step(self, opt: torch.optim.Optimizer, params: list[torch.Tensor],
                   sampler: WindowSampler, generator: torch.Generator, it: int) -> torch.Tensor:
        """Optimisation step ``it`` (0-based): learning rate of the schedule, a batch of
        windows, forward, backward, gradient clipping, AdamW step. Returns the batch's loss,
        detached, on the device (reading it would wait for the device)."""
        p = self.preset
        self.model.train()
        lr = lr_at(it, p)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = sampler.sample(p.batch_size, generator)
        loss = self._forward(x, y)
        loss.backward()
        if p.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, p.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    def warmup(self, sampler: WindowSampler, iters: int = 3) -> float:
        """Run a few forward/backward passes so torch.compile builds its kernels now rather
        than inside the first timed training; returns the seconds it took. The weights are
        reinitialised by the next :meth:`train`, and the caller's RNG state is kept."""
        start = time.perf_counter()
        gen = torch.Generator(device=self.device).manual_seed(0)
        with self._seeded_dropout(0):
            self.model.train()
            for _ in range(iters):
                x, y = sampler.sample(self.preset.batch_size, gen)
                self._forward(x, y).backward()
                # Gradients of a replayed CUDA graph are overwritten by the next replay:
                # they must not be accumulated into across steps.
                self.model.zero_grad(set_to_none=True)
            self.model.eval()
            self.evaluate(torch.cat([x, y[:, -1:]], dim=1))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights, on the CPU (tied tensors are saved once by torch.save)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
        self.model.eval()
