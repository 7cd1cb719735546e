"""The sweep spec: a grid of simulation specs from fixed fields and axes, each grid point's
folder id and seed (derived from its coordinates only), and the errors of starting a sweep."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictBool, StrictInt

from .._validation import read_toml, validation_error_message
from ..api import plan
from ..engine.footprint import check_p0_fits
from ..spec import SimulationSpec

#: Fields that cannot be axes: seeds come from the coordinates; runs, generations and the
#: trajectories kept are the sweep's own (a shorter horizon is a prefix of a longer one: query
#: it instead); which runs keep trajectories changes no number.
NOT_AXES = ("seed", "runs", "generations", "metrics", "trajectories", "trajectory_memory_mb")
#: SimulationSpec fields that are the sweep's own, not ``fixed``.
OWN_FIELDS = ("seed", "runs", "generations", "trajectories")
AxisValue = StrictBool | StrictInt | float | str


class SweepInputError(ValueError):
    """Bad input found while starting a sweep (output folder, executor, workers)."""


class AxisRange(BaseModel):
    """Evenly spaced axis values: ``num`` points from ``start`` to ``stop`` (both included;
    geometric when ``log``), or ``start, start + step, …`` up to ``stop`` (included when it
    falls on the grid). Values are rounded to 12 significant digits so they print and compare
    as written."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    start: float
    stop: float
    num: int | None = Field(None, ge=1)
    step: float | None = Field(None, gt=0)
    log: bool = False

    def size(self) -> int:
        """How many values the range gives, known before they are made."""
        if (self.num is None) == (self.step is None):
            raise ValueError("a range needs exactly one of 'num' and 'step'")
        if self.num is not None:
            return self.num
        if self.stop < self.start:
            raise ValueError("'stop' must be at least 'start' in a range with 'step'")
        return math.floor((self.stop - self.start) / self.step * (1 + 1e-12)) + 1

    def values(self) -> list[float]:
        self.size()  # the range's own checks
        if self.log:
            if self.step is not None:
                raise ValueError("a 'log' range takes 'num', not 'step'")
            if self.start <= 0 or self.stop <= 0:
                raise ValueError("a 'log' range needs 'start' and 'stop' > 0")
            raw = np.geomspace(self.start, self.stop, self.num)
        elif self.num is not None:
            raw = np.linspace(self.start, self.stop, self.num)
        else:
            if self.stop < self.start:
                raise ValueError("'stop' must be at least 'start' in a range with 'step'")
            count = math.floor((self.stop - self.start) / self.step * (1 + 1e-12)) + 1
            raw = self.start + self.step * np.arange(count)  # i·step, not a running sum
        return [float(f"{v:.12g}") for v in raw]


class SweepSpec(BaseModel):
    """A grid of simulations: fixed :class:`SimulationSpec` fields, axes, runs, generations,
    seed, and the runs whose trajectories each point keeps (``trajectories``, as in
    SimulationSpec; by default none: the tables need only the per-generation statistics and
    per-run outcomes). Every grid point is validated as a SimulationSpec when the sweep spec
    is built."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str | None = None
    runs: int = Field(100, ge=1)
    generations: int = Field(100, ge=1)
    seed: int | None = Field(None, ge=0)
    trajectories: Literal["auto", "all", "none"] | StrictInt = "none"
    axes: dict[str, list[AxisValue] | AxisRange]
    fixed: dict[str, Any] = Field(default_factory=dict)
    _grid: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _specs: list[SimulationSpec] = PrivateAttr(default_factory=list)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _collect_fixed(cls, data: Any) -> Any:
        """Flat TOML: keys of SimulationSpec go to ``fixed``; anything else unknown fails."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        fixed = dict(data.pop("fixed", {}) or {})
        own = set(cls.model_fields) - {"fixed"}
        for key in list(data):
            if key not in own and key in SimulationSpec.model_fields:
                fixed[key] = data.pop(key)
        unknown = sorted(set(data) - own)
        if unknown:
            raise ValueError(f"unknown key '{unknown[0]}': a sweep spec takes the fields of a "
                             f"simulation spec plus 'axes' and 'name'")
        if isinstance(fixed.get("metrics"), list):
            fixed["metrics"] = tuple(fixed["metrics"])
        data["fixed"] = fixed
        return data

    @pydantic.field_validator("trajectories", mode="before")
    @classmethod
    def _runs_kept(cls, value: Any) -> Any:
        """One plain line for a bad value (pydantic would name the union's branches)."""
        if value in ("auto", "all", "none") or (isinstance(value, int) and
                                                  not isinstance(value, bool) and value >= 0):
            return value
        raise ValueError(f"must be 'auto', 'all', 'none' or a number of runs ≥ 0; "
                         f"got {value!r}")

    @pydantic.model_validator(mode="after")
    def _expand(self) -> SweepSpec:
        if not self.axes:
            raise ValueError("'axes' must name at least one parameter to vary")
        unknown = sorted(set(self.fixed) - set(SimulationSpec.model_fields))
        if unknown:
            raise ValueError(f"'fixed' names '{unknown[0]}', which is not a simulation parameter")
        reserved = sorted(set(self.fixed) & set(OWN_FIELDS))
        if reserved:
            raise ValueError(f"'{reserved[0]}' belongs to the sweep itself, not to 'fixed'")
        clash = sorted(set(self.fixed) & set(self.axes))
        if clash:
            raise ValueError(f"'{clash[0]}' is both fixed and an axis: give it in one place")
        _check_grid_size(self.axes)
        values = {name: _axis_values(name, axis) for name, axis in self.axes.items()}
        grid = [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
        specs = []
        for coords in grid:
            try:
                spec = SimulationSpec(**self.fixed, **coords, runs=self.runs,
                                      generations=self.generations,
                                      trajectories=self.trajectories)
                spec.kept_runs()  # the points keep their trajectories in memory
                if spec.p0 is None:
                    check_p0_fits(spec.contexts, spec.vocab)
                specs.append(spec)
            except (pydantic.ValidationError, ValueError, TypeError) as exc:
                raise ValueError(f"grid point {_label(coords)}: {_one_line(exc)}") from None
        # Every point runs the sweep's runs and generations: size the first before any point
        # is written (a point too large for the machine then stops nothing half-way).
        try:
            plan(specs[0], store="result.zarr" if self.trajectories != "none" else None)
        except ValueError as exc:
            raise ValueError(f"grid point {_label(grid[0])}: {_one_line(exc)}") from None
        self._grid, self._specs = grid, specs
        return self

    @property
    def axis_values(self) -> dict[str, list]:
        """The expanded values of every axis, in declaration order."""
        return {name: list(dict.fromkeys(c[name] for c in self._grid)) for name in self.axes}

    def grid(self) -> list[dict[str, Any]]:
        """Coordinates of every point, row-major over the axes in declaration order."""
        return [dict(c) for c in self._grid]

    def points(self, entropy: int) -> list[SweepPoint]:
        """Every grid point with its seed, given the sweep's resolved entropy."""
        out = []
        for index, (coords, spec) in enumerate(zip(self._grid, self._specs)):
            given = spec.model_dump(exclude_unset=True)
            given["seed"] = point_entropy(entropy, coords)
            if spec.p0 is None:  # a p(0) file needs no seed
                given.setdefault("distribution_seed", entropy)
            out.append(SweepPoint(index, coords, point_id(coords), SimulationSpec(**given)))
        return out


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read a sweep spec from TOML (the format is in the :mod:`modelcollapse.sweep` docstring)."""
    data = read_toml(path, "spec")
    data.setdefault("name", Path(path).stem)
    return SweepSpec(**data)


#: Most points a sweep may have: each point is a simulation with a folder of its own (a few
#: files), and the grid is expanded and validated in memory before anything runs.
MAX_POINTS = 100_000


def _check_grid_size(axes: dict) -> None:
    """Refuse a grid of more than MAX_POINTS points before its values are made."""
    sizes = []
    for name, axis in axes.items():
        try:
            sizes.append(axis.size() if isinstance(axis, AxisRange) else len(axis))
        except ValueError as exc:
            raise ValueError(f"axis '{name}': {exc}") from None
    total = math.prod(max(size, 1) for size in sizes)
    if total > MAX_POINTS:
        raise ValueError(f"The 'axes' parameter of sweep must make at most {MAX_POINTS:,} "
                         f"points (each is a simulation with a folder of its own); these make "
                         f"{total:,}: use fewer values per axis, or split the grid over sweeps.")


def _axis_values(name: str, axis: list | AxisRange) -> list:
    """An axis as values of its SimulationSpec field's type (ints stay ints, floats floats)."""
    if name not in SimulationSpec.model_fields:
        raise ValueError(f"axis '{name}' is not a simulation parameter; choose from "
                         f"{sorted(set(SimulationSpec.model_fields) - set(NOT_AXES))}")
    if name in NOT_AXES:
        raise ValueError(f"'{name}' cannot be an axis (it is one value for the whole sweep)")
    kind = _field_kind(name)
    if isinstance(axis, AxisRange):
        try:
            raw = axis.values()
        except ValueError as exc:
            raise ValueError(f"axis '{name}': {exc}") from None
        if kind == "int":
            raw = [round(v) for v in raw]
    else:
        raw = list(axis)
    if not raw:
        raise ValueError(f"axis '{name}' has no values")
    if kind == "float":
        raw = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in raw]
    if len(set(map(repr, raw))) < len(raw):
        raise ValueError(f"axis '{name}' repeats a value ({raw}); for an int parameter a range "
                         f"may round several points to one int: use fewer points")
    return raw


def _field_kind(name: str) -> str:
    """'int', 'float' or 'other' for a SimulationSpec field (``X | None`` counts as X)."""
    return {pa.int64(): "int", pa.float64(): "float"}.get(
        _arrow_type(SimulationSpec.model_fields[name].annotation), "other")


def _label(coords: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in coords.items())


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, pydantic.ValidationError):
        return validation_error_message(exc)
    return str(exc).splitlines()[0]


# --- seeds ------------------------------------------------------------------------------------
def _canonical(coords: dict[str, Any]) -> bytes:
    return json.dumps(coords, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def point_id(coords: dict[str, Any]) -> str:
    """The point's folder name: 16 hex digits of SHA-256 of its canonical coordinates."""
    return hashlib.sha256(_canonical(coords)).hexdigest()[:16]


def point_entropy(sweep_entropy: int, coords: dict[str, Any]) -> int:
    """The 128-bit seed of the point at ``coords`` (see :mod:`modelcollapse.sweep`)."""
    digest = hashlib.sha256(_canonical(coords)).digest()
    words = tuple(int.from_bytes(digest[i: i + 4], "little") for i in range(0, 32, 4))
    state = np.random.SeedSequence(sweep_entropy, spawn_key=words).generate_state(4, np.uint32)
    return sum(int(w) << (32 * i) for i, w in enumerate(state))


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: its position in grid order, coordinates, folder id and full spec."""

    index: int
    coords: dict[str, Any]
    point_id: str
    spec: SimulationSpec

    @property
    def cost(self) -> int:
        """Relative work, for scheduling the longest points first (results do not depend on it)."""
        s = self.spec
        return s.runs * s.contexts * s.generations * (s.n + (s.N or 0))


def _arrow_type(annotation: Any) -> pa.DataType:
    """A fixed column type per spec field, so one-row tables of different points concatenate.
    ``X | None`` maps as X; a Literal of strings and anything else map to strings."""
    if typing.get_origin(annotation) is typing.Literal:
        return pa.string()
    args = set(typing.get_args(annotation)) - {type(None)} or {annotation}
    return {frozenset({bool}): pa.bool_(), frozenset({int}): pa.int64(),
            frozenset({float}): pa.float64()}.get(frozenset(args), pa.string())
