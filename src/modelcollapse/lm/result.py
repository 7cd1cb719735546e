"""What a transformer run leaves behind, read back from its directory as one object.

A run directory holds ``run.json`` (settings) and one folder per generation m,
``gen_MM/``: ``model.pt`` (weights), ``model.json`` (training record), ``probs.npy``
(p(m)(· | c) at the fixed contexts, (contexts, vocab)), and, when a later model trains on
its text, ``corpus.npy`` (streams, stream_length) and ``corpus.json``; ``gen_00/`` also
holds ``contexts.npy`` (contexts, block_size), sampled once from p(0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoint import load_array, read_json
from .metrics import l1_per_context, mean_band

__all__ = ["GenerationRecord", "RunResult", "gen_dir", "load_run"]


def gen_dir(out: str | Path, m: int) -> Path:
    return Path(out) / f"gen_{m:02d}"


@dataclass
class GenerationRecord:
    """Model m: what it trained on, how training went, and the corpus it published."""

    generation: int
    sources: list[dict]            # [{"generation": t, "start": a, "stop": b}] in tokens
    iters: list[int]               # validation points (iterations)
    val_loss: list[float]          # validation loss on the real text at those points
    train_loss: list[float]        # mean training loss between points
    train_seconds: float
    eval_seconds: float
    tokens_per_second: float
    corpus: dict | None = None     # tokens, streams, nll, seconds, diversity, … (if published)
    extra: dict = field(default_factory=dict)

    @property
    def final_val_loss(self) -> float:
        return self.val_loss[-1]


@dataclass
class RunResult:
    """A finished (or partly finished) run: records and next-token distributions per model."""

    out: Path
    settings: dict
    generations: list[GenerationRecord]
    contexts: np.ndarray           # (n_contexts, block_size) token ids, sampled from p(0)
    probs: np.ndarray              # (n_models, n_contexts, vocab), p(m)(· | context)

    @property
    def l1_to_first(self) -> np.ndarray:
        """‖p(m) − p(1)‖₁ per model and context, (n_models, n_contexts) (Fig. 5, left)."""
        if len(self.probs) < 2:
            return np.full(self.probs.shape[:2], np.nan)
        return l1_per_context(self.probs, self.probs[1][None])

    @property
    def l1_to_true(self) -> np.ndarray:
        """‖p(m) − p(0)‖₁ per model and context, (n_models, n_contexts)."""
        return l1_per_context(self.probs, self.probs[0][None])

    def summary(self) -> dict:
        """JSON-able numbers: per generation, the metrics with their bands, and time spent."""
        rows = []
        l1_first, l1_true = self.l1_to_first, self.l1_to_true
        for rec in self.generations:
            m = rec.generation
            row = {"generation": m, "final_val_loss": rec.final_val_loss,
                   "l1_to_first": mean_band(l1_first[m]), "l1_to_true": mean_band(l1_true[m]),
                   "train_seconds": rec.train_seconds, "eval_seconds": rec.eval_seconds,
                   "train_tokens_per_second": rec.tokens_per_second,
                   "sources": rec.sources}
            if rec.corpus is not None:
                row["corpus"] = rec.corpus
            rows.append(row)
        corpora = [r.corpus for r in self.generations if r.corpus]
        return {
            "settings": self.settings,
            "generations": rows,
            "seconds": {
                "train": sum(r.train_seconds for r in self.generations),
                "validation": sum(r.eval_seconds for r in self.generations),
                "sample": sum(c["seconds"] for c in corpora),
            },
        }

    def to_dataset(self):
        """The per-model metrics as an xarray Dataset (dims generation, context, eval)."""
        import xarray as xr

        n = len(self.generations)
        n_eval = max(len(r.iters) for r in self.generations)
        val = np.full((n, n_eval), np.nan)
        iters = np.full((n, n_eval), -1)
        for i, r in enumerate(self.generations):
            val[i, : len(r.val_loss)] = r.val_loss
            iters[i, : len(r.iters)] = r.iters
        return xr.Dataset(
            {
                "l1_to_first": (("generation", "context"), self.l1_to_first[:n]),
                "l1_to_true": (("generation", "context"), self.l1_to_true[:n]),
                "val_loss": (("generation", "eval"), val),
                "iteration": (("generation", "eval"), iters),
            },
            coords={"generation": np.arange(n)},
            attrs={"scenario": self.settings.get("scenario", "")},
        )


def load_run(out: str | Path, n_generations: int | None = None) -> RunResult:
    """Read the finished models 0 … ``n_generations`` (default: all) of the run in ``out``,
    stopping at the first unfinished one."""
    out = Path(out)
    settings = read_json(out / "run.json")
    if n_generations is None:
        n_generations = settings["n_generations"]
    records, probs = [], []
    m = 0
    while m <= n_generations and (gen_dir(out, m) / "model.json").exists():
        d = gen_dir(out, m)
        meta = read_json(d / "model.json")
        corpus = read_json(d / "corpus.json") if (d / "corpus.json").exists() else None
        if corpus is not None:
            corpus = {k: v for k, v in corpus.items() if k != "recipe"}
        records.append(GenerationRecord(
            generation=m, sources=meta["sources"], iters=meta["iters"],
            val_loss=meta["val_loss"], train_loss=meta["train_loss"],
            train_seconds=meta["train_seconds"], eval_seconds=meta["eval_seconds"],
            tokens_per_second=meta["tokens_per_second"], corpus=corpus,
            extra={"probs_seconds": meta.get("probs_seconds", 0.0)}))
        probs.append(load_array(d / "probs.npy"))
        m += 1
    if not records:
        raise ValueError(f"No finished generation in {out}.")
    contexts = load_array(gen_dir(out, 0) / "contexts.npy")
    return RunResult(out, settings, records, contexts, np.stack(probs))
