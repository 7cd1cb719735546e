"""What an n-gram run leaves: statistics per generation, as one labelled Dataset.

``data`` holds, over ``generation`` 0 … G: ``<metric>_mean``, ``<metric>_se`` (sd over runs
/ √runs; NaN with one run) and ``<metric>_count`` for every metric of
:data:`.metrics.METRICS` and :data:`.text_metrics.TEXT_METRICS`; ``l1_to_first_context``
(generation, sampled_context): ‖p(m) − p(1)‖₁ at each sampled context, mean over runs (paired
comparisons between scenarios use it); ``<metric>_predicted`` where the exact per-context
prediction exists (fixed contexts, fully synthetic); and in ``attrs`` the spec, the corpus's
sizes and the decoded samples (JSON). ``save`` writes ``result.nc``, ``samples.txt``,
``summary.json`` and ``run.png`` into a folder, each atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from .._files import atomic_write, atomic_write_text
from ..results import provenance

__all__ = ["NgramResult", "build_result", "load_result"]


@dataclass
class NgramResult:
    data: xr.Dataset

    @property
    def spec(self) -> dict:
        return json.loads(self.data.attrs["spec"])

    @property
    def samples(self) -> dict[int, list[str]]:
        return {int(k): v for k, v in json.loads(self.data.attrs["samples"]).items()}

    def mean(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean over runs per generation and its standard error."""
        if f"{metric}_mean" not in self.data:
            names = [k[:-5] for k in self.data.data_vars if k.endswith("_mean")]
            raise ValueError(f"The 'metric' parameter of NgramResult.mean must be one of "
                             f"{names}. Got {metric!r} instead.")
        return self.data[f"{metric}_mean"].values, self.data[f"{metric}_se"].values

    def summary(self) -> dict:
        """Machine-readable summary: spec, sizes, and every metric's mean ± se per generation."""
        metrics = {k[:-5]: {"mean": _finite(self.data[k].values),
                            "se": _finite(self.data[k[:-5] + "_se"].values)}
                   for k in self.data.data_vars if k.endswith("_mean")}
        predicted = {k[: -len("_predicted")]: _finite(self.data[k].values)
                     for k in self.data.data_vars if k.endswith("_predicted")}
        attrs = self.data.attrs
        return {"spec": self.spec, "corpus": json.loads(attrs["corpus"]),
                "seconds": float(attrs["seconds"]), "metrics": metrics,
                "predicted": predicted}

    def save(self, folder: str | Path) -> Path:
        from .plots import plot_result

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        payload = self.data.to_netcdf()
        atomic_write(folder / "result.nc", lambda fh: fh.write(payload))
        lines = []
        for m, texts in sorted(self.samples.items()):
            lines += [f"=== generation {m} ===", *(t + "\n---" for t in texts), ""]
        atomic_write_text(folder / "samples.txt", "\n".join(lines))
        atomic_write_text(folder / "summary.json", json.dumps(self.summary(), indent=1))
        plot_result(self, folder / "run.png")
        return folder


def load_result(folder: str | Path) -> NgramResult:
    path = Path(folder) / "result.nc"
    with xr.open_dataset(path) as ds:
        return NgramResult(ds.load())


def _finite(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def describe(spec) -> str:
    """The scenario in the loop's own units, e.g. ``partially-synthetic(f=0.2, S_j =
    0.01·|C_j|)`` or ``fully-synthetic(1,000,000 tokens)``."""
    parts = []
    if spec.synthetic_fraction is not None:
        parts.append(f"f={spec.synthetic_fraction:g}")
    if spec.K is not None:
        parts.append(f"K={spec.K}")
    parts.append(f"S_j = {spec.resolved_ratio:g}·|C_j|" if spec.loop == "fixed"
                 else f"{spec.resolved_tokens:,} tokens")
    return f"{spec.scenario}({', '.join(parts)})"


def build_result(spec, prepared, moments, per_context: np.ndarray,
                 samples: dict[int, list[str]], prediction: dict | None, *,
                 seconds: float) -> NgramResult:
    count, total, squares = moments.count, moments.total, moments.squares
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        var = (squares - count * mean**2) / (count - 1)
        se = np.where(count > 1, np.sqrt(np.maximum(var, 0.0) / count), np.nan)
    data = {}
    for i, name in enumerate(moments.names):
        data[f"{name}_mean"] = ("generation", mean[i])
        data[f"{name}_se"] = ("generation", se[i])
        data[f"{name}_count"] = ("generation", count[i].astype(np.int64))
    runs = max(spec.n_runs, 1)
    data["l1_to_first_context"] = (("generation", "sampled_context"), per_context / runs)
    for name, values in (prediction or {}).items():
        data[f"{name}_predicted"] = ("generation", values)
    p0 = prepared.p0
    corpus = {"vocab_size": int(p0.vocab_size), "train_tokens": int(prepared.train.size),
              "val_tokens": int(prepared.val.size), "contexts": int(p0.n_contexts),
              "types": int(p0.n_entries)}
    attrs = {"spec": spec.model_dump_json(), "corpus": json.dumps(corpus),
             "samples": json.dumps({str(k): v for k, v in samples.items()}),
             "scenario": describe(spec), "seconds": float(seconds),
             "provenance": json.dumps(provenance())}
    ds = xr.Dataset(data, coords={"generation": np.arange(spec.generations + 1),
                                  "sampled_context": np.arange(per_context.shape[1])},
                    attrs=attrs)
    return NgramResult(ds)
