"""Figure specs: the TOML files of ``specs/`` validated and resolved into cells.

A figure spec is a small TOML file validated by :class:`FigureFile` (unknown keys fail).
``base`` holds :class:`~modelcollapse.spec.SimulationSpec` fields shared by every cell;
``axes`` expand into the cartesian product of their values (first axis outermost);
``cells`` lists further cells one by one. ``[quick]`` overrides ``base`` and keeps only some
axis values, for a fast run. ``trajectories`` (as in SimulationSpec; default ``"none"``)
names the runs each cell keeps whole, with their snapshots: the runs its layout draws one by
one. :func:`load_figure` resolves a spec into a :class:`Figure`: its cells, each with a full
:class:`~modelcollapse.spec.SimulationSpec` (seed and trajectories included).

:data:`QUANTITIES` names every number a figure can report, measured or theoretical.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .._validation import read_toml
from ..spec import SimulationSpec
from .overlays import THEORIES

__all__ = [
    "FIGURES",
    "LAYOUT_NAMES",
    "QUANTITIES",
    "SPEC_DIR",
    "Z_AGREE",
    "Cell",
    "Figure",
    "FigureFile",
    "cell_seed",
    "load_figure",
    "quantity_kind",
    "quantity_label",
]

SPEC_DIR = Path(__file__).resolve().parent / "specs"
FIGURES = ("fig1", "fig2", "fig3", "fig4", "fig6")
#: Figure layouts drawn by :mod:`modelcollapse.experiments.figures`.
LAYOUT_NAMES = ("simplex", "collapse_time_vs_n", "runs_grid", "window_columns")
#: A paper number agrees with ours when |ours − paper| < Z_AGREE standard errors of ours.
Z_AGREE = 3.0

#: Every number a cell can report: name -> (kind, label). Names ending in ``@`` take a
#: generation (``dirac_fraction@40``). Measured names may have a ``<name>_se`` companion.
QUANTITIES: dict[str, tuple[str, str]] = {
    "T_mean": ("sim", "mean T (runs that collapsed)"),
    "T_sd": ("sim", "sd of T"),
    "collapsed_runs": ("sim", "runs that hit a Dirac mass"),
    "collapsed_fraction": ("sim", "fraction of runs that hit a Dirac mass"),
    "censored_runs": ("sim", "runs with no Dirac mass (censored)"),
    "absorption_mean": ("sim", "mean absorption time"),
    "absorption_censored": ("sim", "runs not absorbed"),
    "sigma_final": ("sim", "mean σ_m, last generation"),
    "l1_first_final": ("sim", "mean ‖p(m) − p(1)‖₁, last generation"),
    "sigma_plateau": ("sim", "mean σ_m, second half"),
    "l1_first_plateau": ("sim", "mean ‖p(m) − p(1)‖₁, second half"),
    "dirac_fraction@": ("sim", "fraction of contexts at a vertex, m = {m}"),
    "l1_first@": ("sim", "mean ‖p(m) − p(1)‖₁, m = {m}"),
    "val_loss@": ("sim", "validation loss on real text, m = {m}"),
    "gap_l1_final": ("sim", "fully synthetic minus this, ‖p(m) − p(1)‖₁, last generation"),
    "sigma@": ("sim", "mean σ_m, m = {m}"),
    "T_exact": ("theory", "exact E[T]"),
    "T_exact_sd": ("theory", "exact sd(T)"),
    "T_lower_eq8": ("theory", "eq. 8 lower bound"),
    "T_upper_eq8": ("theory", "eq. 8 upper bound"),
    "T_diffusion": ("theory", "diffusion E[T] (Littler)"),
    "T_diffusion_corrected": ("theory", "diffusion E[T], finite-n corrected"),
    "S_eq6_final": ("theory", "S_m of eq. 6, last generation"),
    "S_eq9_final": ("theory", "S_m of eq. 9, last generation"),
    "S_eq6@": ("theory", "S_m of eq. 6, m = {m}"),
    "S_exact_final": ("theory", "exact S_m, last generation"),
    "l1_first_exact_final": ("theory", "exact E‖p(m) − p(1)‖₁, last generation"),
    "S_exact_plateau": ("theory", "exact S_m, second half"),
    "absorption_predicted": ("approximation", "predicted absorption time"),
    "dirac_fraction_exact@": ("theory", "exact P(Dirac), m = {m}"),
}


def quantity_label(name: str) -> str:
    """The report's label of a quantity name (``"sigma@40"`` -> ``"mean σ_m, m = 40"``)."""
    base, at, m = name.partition("@")
    kind_label = QUANTITIES.get(base + at)
    if kind_label is None:
        raise ValueError(f"Quantity {name!r} unknown. Choose from {sorted(QUANTITIES)}.")
    return kind_label[1].format(m=m)


def quantity_kind(name: str) -> str:
    base, at, _ = name.partition("@")
    return QUANTITIES[base + at][0]


# ---------------------------------------------------------------------------------------------
# The spec file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Entry(_Strict):
    """An explicit cell, or an axis value that sets several fields at once."""

    key: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    label: str
    spec: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    paper: dict[str, float] = {}
    theory: list[str] = []


class _Axis(_Strict):
    """One axis of the grid: scalar values set ``field``; table values are entries."""

    name: str
    field: str | None = None
    values: list[_Entry | int | float | str] = Field(min_length=1)

    @model_validator(mode="after")
    def _same_kind(self) -> _Axis:
        scalars = [v for v in self.values if not isinstance(v, _Entry)]
        if scalars and self.field is None:
            raise ValueError(f"axis '{self.name}' has plain values, so it needs 'field' "
                             f"(the spec field they set)")
        if self.field is not None and len(scalars) != len(self.values):
            raise ValueError(f"axis '{self.name}' sets 'field', so its values must be plain")
        return self


class _Options(_Strict):
    snapshots: list[int] = []
    metrics: list[str] = ["sigma", "l1_to_first"]
    show_p0: bool = False
    compare_by: str | None = None


class _Quick(_Strict):
    base: dict[str, Any] = {}
    axes: dict[str, list[int | float | str]] = {}


class FigureFile(_Strict):
    """A figure spec as written in TOML (see the module docstring)."""

    id: str = Field(pattern=r"^[a-z0-9_-]+$")
    title: str
    paper: str
    layout: Literal[LAYOUT_NAMES]  # type: ignore[valid-type]
    seed: int = Field(ge=0)
    base: dict[str, Any]
    axes: list[_Axis] = []
    cells: list[_Entry] = []
    theory: list[str] = []
    report: list[str] = []
    notes: str = ""
    options: _Options = _Options()
    generations_per_n: int | None = Field(None, ge=1)
    paper_runs: int | None = Field(None, ge=1)
    trajectories: Literal["auto", "all", "none"] | int = "none"
    quick: _Quick = _Quick()

    @model_validator(mode="after")
    def _consistent(self) -> FigureFile:
        if not self.axes and not self.cells:
            raise ValueError("a figure needs 'axes' or 'cells'")
        names = {axis.name for axis in self.axes}
        for name in self.quick.axes:
            if name not in names:
                raise ValueError(f"quick.axes names axis {name!r}; axes are {sorted(names)}")
        entries = [*self.cells, *(v for a in self.axes for v in a.values
                                  if isinstance(v, _Entry))]
        for name in sorted({*self.theory, *(t for e in entries for t in e.theory)}):
            if name not in THEORIES:
                raise ValueError(f"theory {name!r} unknown. Choose from "
                                 f"{sorted(THEORIES)}")
        for name in [*self.report, *(q for e in entries for q in e.paper)]:
            quantity_label(name)
        # One place says which runs are kept, so that the layout's needs are read off it.
        if any("trajectories" in fields for fields in
               (self.base, self.quick.base, *(e.spec for e in entries))):
            raise ValueError("'trajectories' is the figure's own: set it at the top of the "
                             "spec, not in 'base', 'quick.base' or a cell's 'spec'")
        if self.options.snapshots and self.trajectories in ("none", 0):
            raise ValueError("'snapshots' are kept for the runs that 'trajectories' keeps: "
                             "ask for at least one")
        return self


# ---------------------------------------------------------------------------------------------
# Resolved figures and cells


@dataclass(frozen=True)
class Cell:
    """One simulation of a figure: its key (file name), label, resolved spec (seed included),
    the numbers the paper states for it, the theory to compute, and tags for the layout.
    ``full_generations``: the cell's horizon in the full run (its spec's in quick mode may be
    shorter; None when unknown)."""

    key: str
    label: str
    spec: SimulationSpec
    paper: dict[str, float] = field(default_factory=dict)
    theory: tuple[str, ...] = ()
    tags: dict[str, Any] = field(default_factory=dict)
    full_generations: int | None = None


@dataclass(frozen=True)
class Figure:
    """A figure spec resolved for one mode (full or quick): its cells and drawing options."""

    id: str
    title: str
    paper: str
    layout: str
    cells: tuple[Cell, ...]
    report: tuple[str, ...]
    notes: str
    options: _Options
    quick: bool
    paper_runs: int | None = None

    def cell(self, key: str) -> Cell:
        for c in self.cells:
            if c.key == key:
                return c
        raise KeyError(key)


def _spec_path(name: str | Path) -> Path:
    path = Path(name)
    if path.suffix == ".toml":
        return path
    if str(name) not in FIGURES:
        raise ValueError(f"Figure {str(name)!r} unknown. Choose from {list(FIGURES)} "
                         f"or give a .toml spec file.")
    return SPEC_DIR / f"{name}.toml"


def cell_seed(figure_seed: int, key: str) -> int:
    """The seed of one cell: from the figure seed and the cell's key alone, so that adding,
    removing or reordering cells (quick mode) never changes the others."""
    seq = np.random.SeedSequence([figure_seed, zlib.crc32(key.encode())])
    return int(seq.generate_state(1, np.uint64)[0])


def _build_spec(fields: dict[str, Any], where: str) -> SimulationSpec:
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    try:
        return SimulationSpec(**fields)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        raise ValueError(f"{where}: {loc + ': ' if loc else ''}{message}") from None


def load_figure(name: str | Path, *, quick: bool = False, runs: int | None = None) -> Figure:
    """Read and resolve a figure spec: ``name`` is ``"fig1"`` … ``"fig6"`` or a TOML path.

    ``quick`` applies the spec's ``[quick]`` table; ``runs`` overrides the runs of every cell.
    """
    path = _spec_path(name)
    raw = read_toml(path, "figure")
    try:
        spec = FigureFile(**raw)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ValueError(f"figure spec {path.name}: {loc}: "
                         f"{err['msg'].removeprefix('Value error, ')}") from None
    base = {**spec.base, **(spec.quick.base if quick else {})}
    if runs is not None:
        base["runs"] = runs
    grid = product(*(_axis_values(spec, a, quick) for a in spec.axes)) if spec.axes else ()
    entries = [_expand(spec, combo) for combo in grid]
    entries += [(c.key, c.label, c.spec, c.tags, c.paper, c.theory) for c in spec.cells]
    cells = []
    for key, label, fields, tags, paper, theory in entries:
        merged = {**base, **fields, "seed": cell_seed(spec.seed, key),
                  "trajectories": spec.trajectories}
        full = {**spec.base, **fields}
        if spec.generations_per_n is not None:
            n = merged.get("n", SimulationSpec.model_fields["n"].default)
            merged["generations"] = spec.generations_per_n * n
            full["generations"] = spec.generations_per_n * full.get(
                "n", SimulationSpec.model_fields["n"].default)
        full_generations = full.get("generations", SimulationSpec.model_fields["generations"]
                                    .default)
        cells.append(Cell(key, label, _build_spec(merged, f"{spec.id}, cell {key!r}"),
                          dict(paper), tuple(dict.fromkeys([*spec.theory, *theory])), tags,
                          full_generations if isinstance(full_generations, int) else None))
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError(f"figure spec {path.name}: cell keys must be unique; got {keys}")
    return Figure(spec.id, spec.title, spec.paper, spec.layout, tuple(cells),
                  tuple(spec.report), spec.notes, spec.options, quick, spec.paper_runs)


def _axis_values(spec: FigureFile, axis: _Axis, quick: bool) -> list[_Entry | int | float | str]:
    keep = spec.quick.axes.get(axis.name) if quick else None
    if keep is None:
        return list(axis.values)
    chosen = [v for v in axis.values if (v.key if isinstance(v, _Entry) else v) in keep]
    if len(chosen) != len(keep):
        raise ValueError(f"figure spec {spec.id}: quick.axes.{axis.name} must list values of "
                         f"the axis; got {keep}")
    return chosen


def _expand(spec: FigureFile, combo: Sequence[_Entry | int | float | str]):
    """One cell of the grid: keys joined by '_', labels by ', ', fields and tags merged."""
    keys, labels, fields, tags, paper, theory = [], [], {}, {}, {}, []
    for axis, value in zip(spec.axes, combo):
        if isinstance(value, _Entry):
            keys.append(value.key)
            labels.append(value.label)
            fields.update(value.spec)
            tags.update(value.tags)
            paper.update(value.paper)
            theory += value.theory
            tags[axis.name] = value.key
            tags[f"{axis.name}_label"] = value.label
        else:
            keys.append(f"{axis.field}{value}")
            labels.append(f"{axis.field} = {value}")
            fields[axis.field] = value
            tags[axis.name] = value
    return "_".join(keys), ", ".join(labels), fields, tags, paper, theory
