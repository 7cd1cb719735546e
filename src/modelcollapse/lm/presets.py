"""Named settings of the transformer loop: the paper's Table 1, a CPU-sized one, a tiny one.

Every field says why it has its value. ``paper`` is appendix C's Table 1 plus the training
schedule of nanoGPT's character-level Shakespeare configuration (the paper's code base);
``cpu`` keeps the paper's recipe but shrinks the model, the training and the corpora so that
Fig. 5 (3 scenarios × 10 generations) runs in minutes on two CPU cores; ``tiny`` is for tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .._validation import check_float, check_int
from .gpt import GPTConfig

__all__ = ["AUTO", "CPU", "PAPER", "PRESETS", "TINY", "Preset", "get_preset", "preset_for_device"]


@dataclass(frozen=True)
class Preset:
    """Architecture, optimisation, generation and metric settings of one loop."""

    name: str
    # --- model (Table 1) ---
    block_size: int = 128            # context length (Table 1)
    n_layer: int = 8                 # transformer blocks (Table 1)
    n_head: int = 4                  # attention heads (Table 1)
    n_embd: int = 256                # embedding dimension (Table 1)
    dropout: float = 0.2             # dropout (Table 1)
    bias: bool = False               # no biases, nanoGPT's default: slightly better and faster
    # --- training (Table 1 + nanoGPT's shakespeare_char schedule) ---
    batch_size: int = 256            # windows per iteration (Table 1)
    max_iters: int = 2000            # iterations per generation (Table 1)
    learning_rate: float = 1e-3      # peak learning rate (Table 1)
    min_lr: float = 1e-4             # cosine decay floor, learning_rate / 10 (nanoGPT)
    warmup_iters: int = 100          # linear warm-up from ~0 (nanoGPT shakespeare_char)
    weight_decay: float = 0.1        # AdamW decay on matrices only (nanoGPT)
    beta1: float = 0.9               # AdamW β1 (nanoGPT)
    beta2: float = 0.99              # AdamW β2: few tokens per batch, so a shorter average
    grad_clip: float = 1.0           # clip the global gradient norm (nanoGPT); 0 = off
    n_evals: int = 24                # validation points, log-spaced over the iterations
    eval_tokens: int | None = None   # validation tokens per point; None = the whole split
    # --- data and generation ---
    corpus_tokens: int | None = None  # tokens per synthetic corpus; None = real train split
    stream_length: int | None = None  # tokens per stream; None = block_size + 1 (all cached)
    gen_batch: int = 8192            # streams sampled at once (bounded by KV-cache memory)
    # --- metrics ---
    n_contexts: int = 300            # contexts of the L1 metric, sampled from p(0) (§4.1)
    diversity_tokens: int = 131_072  # corpus prefix that distinct-n is computed on

    def __post_init__(self):
        w = "preset"
        self.model_config(65)  # architecture checks
        for name in ("batch_size", "max_iters", "n_evals", "gen_batch", "n_contexts",
                     "diversity_tokens"):
            check_int(getattr(self, name), name, low=1, where=w)
        check_int(self.warmup_iters, "warmup_iters", low=0, high=self.max_iters, where=w)
        check_float(self.learning_rate, "learning_rate", low=0.0, low_open=True, where=w)
        check_float(self.min_lr, "min_lr", low=0.0, high=self.learning_rate, where=w)
        check_float(self.weight_decay, "weight_decay", low=0.0, where=w)
        check_float(self.beta1, "beta1", low=0.0, high=0.999999, where=w)
        check_float(self.beta2, "beta2", low=0.0, high=0.999999, where=w)
        check_float(self.grad_clip, "grad_clip", low=0.0, where=w)
        if self.eval_tokens is not None:
            check_int(self.eval_tokens, "eval_tokens", low=self.block_size + 1, where=w)
        if self.corpus_tokens is not None:
            check_int(self.corpus_tokens, "corpus_tokens", low=1, where=w)
        if self.stream_length is not None:
            check_int(self.stream_length, "stream_length", low=self.block_size + 1, where=w)

    @property
    def window_stream_length(self) -> int:
        """Tokens per generated stream: one training window (block_size + 1) by default."""
        return self.stream_length or self.block_size + 1

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, block_size=self.block_size,
                         n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd,
                         dropout=self.dropout, bias=self.bias)

    def with_(self, **changes) -> Preset:
        """A copy with some fields changed (and checked again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


#: Appendix C, Table 1 (GPT-2-style, 6.3 M parameters, 65.5 M training tokens per model).
PAPER = Preset(name="paper")

#: Two CPU cores, Fig. 5 in ~10 minutes (limit 20): 0.1 M parameters, 2.5 M training tokens
#: and 195 k-token corpora per generation; docs/lm.md has the measured time and numbers.
CPU = Preset(
    name="cpu",
    block_size=64,           # half the context: attention and activations cost half
    n_layer=2,               # 2 blocks of width 64: 0.1 M parameters, 17–23 ms per iteration
    n_head=4,                # head size 16
    n_embd=64,               # see n_layer
    dropout=0.0,             # ~10 passes over each corpus: too few to overfit
    batch_size=32,           # 2,048 tokens per iteration
    max_iters=1200,          # 2.5 M tokens per model, ~28 s on one core
    learning_rate=3e-3,      # a small model trained briefly takes a larger step
    min_lr=3e-4,             # learning_rate / 10, as in the paper preset
    warmup_iters=50,         # short run, short warm-up
    n_evals=16,              # log-spaced validation points
    eval_tokens=16_384,      # 256 validation windows: standard error ~0.014 nats on the loss
    corpus_tokens=195_000,   # 3,000 streams of 65 tokens per synthetic corpus
    gen_batch=3_000,         # one pass of 64 cached decode steps per corpus
)

#: Seconds-scale settings for tests.
TINY = Preset(
    name="tiny",
    block_size=16, n_layer=1, n_head=2, n_embd=32, dropout=0.0,
    batch_size=16, max_iters=60, learning_rate=1e-2, min_lr=1e-3, warmup_iters=5,
    n_evals=6, eval_tokens=1_024, corpus_tokens=3_400, gen_batch=128,
    n_contexts=40, diversity_tokens=4_096,
)

#: Registry: preset name -> preset. Strings resolve here and nowhere else.
PRESETS: dict[str, Preset] = {p.name: p for p in (PAPER, CPU, TINY)}


#: The preset name that picks by device: :data:`PAPER` on a CUDA device, :data:`CPU` on a CPU
#: (the paper's model trains for hours there).
AUTO = "auto"


def preset_for_device(preset: str, device: str) -> str:
    """``preset``, with :data:`AUTO` resolved for ``device`` ("cpu", "cuda[:i]" or "auto")."""
    if preset != AUTO:
        return preset
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return PAPER.name if str(device).startswith("cuda") else CPU.name


def get_preset(preset: str | Preset, **changes) -> Preset:
    """Resolve a preset name (or pass a Preset through), then apply field changes."""
    if isinstance(preset, Preset):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ValueError(f"Preset {preset!r} unknown. Choose from {sorted(PRESETS)}.")
    changes = {k: v for k, v in changes.items() if v is not None}
    iters = changes.get("max_iters")
    if "warmup_iters" not in changes and isinstance(iters, int) and \
            not isinstance(iters, bool) and 1 <= iters < base.warmup_iters:
        # Name the field that was changed, not the one it now contradicts.
        raise ValueError(f"The 'max_iters' parameter of preset must be an int in the range "
                         f"[{base.warmup_iters}, inf) for preset '{base.name}' (its warm-up "
                         f"takes {base.warmup_iters} iterations). Got {iters} instead.")
    return base.with_(**changes) if changes else base
