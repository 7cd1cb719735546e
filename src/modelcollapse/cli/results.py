"""``modelcollapse results``: SQL over a sweep's tables (DuckDB) and plots over its axes."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from .._files import check_output_folder
from ._common import echo_json, fail, input_errors


@click.group("results")
def command() -> None:
    """Query and plot the tables of a sweep folder (views: points, generations)."""


def _connect(out: str):
    from ..sweep.query import connect

    with input_errors():
        return connect(out)


def _run_sql(con, sql: str | None = None, view: str | None = None,
             condition: str | None = None, **equal):
    """``sql`` (statements that read only), or the rows of ``view`` where ``condition`` (one
    SQL expression) holds and the ``equal`` columns have their values; a DataFrame.

    A refused statement, a damaged table file and an error in the SQL are each one line."""
    import duckdb

    from ..sweep.query import QueryRefused, fetch, select_rows

    with input_errors():
        try:
            if sql is not None:
                return fetch(con, sql)
            return select_rows(con, view, condition, **equal)
        except QueryRefused as exc:
            fail(str(exc) if sql is not None else f"'--where': {exc}")
        except duckdb.PermissionException as exc:
            fail(f"SQL error: {_first_line(exc)} (SQL over a sweep reads its tables, "
                 f"points and generations, and no other file)")
        except duckdb.Error as exc:
            fail(f"SQL error: {_first_line(exc)}")
    return None  # unreachable: fail raises


def _first_line(exc: BaseException) -> str:
    line = str(exc).strip().splitlines()[0].rstrip(" :") if str(exc).strip() else ""
    return line or type(exc).__name__


def _records(df) -> list[dict]:
    """JSON-ready rows: NaN and missing values become null, numpy scalars plain Python."""
    rows = df.astype(object).where(df.notna(), None).to_dict(orient="records")
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            for row in rows]


@command.command("query")
@click.argument("out", type=click.Path(file_okay=False))
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
def query(out, sql, fmt) -> None:
    """Run SQL over the sweep in OUT: tables `points` (one row per grid point: parameters,
    collapse_time_mean/_se/_median, censored_runs, …) and `generations` (one row per point
    and generation: <metric>_mean, <metric>_se for sigma, sup, l1_to_first, l1_to_true,
    entropy, support, collapsed), joined on point_id.

    The SQL only reads: the Parquet files behind these tables are the only files it can open,
    and statements that would write or change settings (COPY, ATTACH, SET, …) are refused.

    Example: modelcollapse results query OUT "SELECT n, S0, collapse_time_median FROM points"
    """
    df = _run_sql(_connect(out), sql)
    if fmt == "json":
        echo_json(_records(df))
    elif fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    else:
        click.echo(df.to_string(index=False) if len(df) else "(no rows)")


@command.command("plot")
@click.argument("out", type=click.Path(file_okay=False))
@click.argument("metric")
@click.option("--x", "x", required=True, help="Axis on the horizontal (or 'generation').")
@click.option("--y", "y", help="Second axis: draws a heatmap.")
@click.option("--hue", help="Second axis: one line per value.")
@click.option("--generation", type=int,
              help="Generation of a per-generation metric (default: the last).")
@click.option("--where", help="One SQL condition fixing the other axes, e.g. \"K = 2\".")
@click.option("--logx", is_flag=True, help="Logarithmic horizontal axis (lines).")
@click.option("--logy", is_flag=True, help="Logarithmic vertical axis (lines).")
@click.option("--xlim", nargs=2, type=float, metavar="LOW HIGH",
              help="Horizontal range of a line plot, e.g. --xlim 0 100 (generations).")
@click.option("--output", type=click.Path(dir_okay=False),
              help="PNG to write (default: OUT/plot_<metric>_<x>[_<y or hue>].png).")
def plot(out, metric, x, y, hue, generation, where, logx, logy, xlim, output) -> None:
    """Draw METRIC over one axis (lines, one per --hue value) or two (--y: a heatmap).

    METRIC is a column of `points` (collapse_time_median, collapsed_fraction, …) or a
    per-generation metric (sigma, l1_to_first, …, read at --generation), with ±2 standard
    errors where the table has them.
    """
    if y is not None and hue is not None:
        fail("'--y' and '--hue' conflict: a heatmap has no hue")
    if xlim and y is not None:
        fail("'--xlim' and '--y' conflict: a heatmap shows every value of its axes")
    if xlim and not xlim[0] < xlim[1]:
        fail(f"The 'xlim' parameter of results plot must be LOW HIGH with LOW < HIGH. "
             f"Got {xlim[0]:g} {xlim[1]:g} instead.")
    path = Path(output) if output else Path(out) / f"plot_{metric}_{x}" \
        f"{'_' + (y or hue) if (y or hue) else ''}.png"
    with input_errors():
        check_output_folder(path.parent, "output")  # before any query
    con = _connect(out)
    source, value, se = _resolve_metric(con, metric, x)
    equal = {}
    if source == "generations" and x != "generation":
        if generation is None:
            generation = int(_run_sql(con, "SELECT max(generation) AS g FROM generations")["g"][0])
        equal["generation"] = generation
    # --where is parsed as one expression: it cannot close the WHERE clause or add a statement.
    df = _run_sql(con, view=source, condition=where, **equal)
    if not len(df):
        fail("no rows to plot: check --where and --generation")
    second = y or hue
    for axis in filter(None, (x, second)):
        if axis not in df.columns:
            fail(f"'{axis}' is not a column of {source}; choose from "
                 f"{[c for c in df.columns if not c.endswith(('_mean', '_se'))]}")
    _check_other_axes(out, df, {x, second, "generation"})

    import matplotlib.pyplot as plt

    from ..plots import column_label, save_figure

    label = column_label(value)
    if generation is not None and source == "generations":
        label = f"{label} at generation {generation}"
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    notes = [where] if where else []
    if y is not None:
        if _heatmap(ax, fig, df, x, y, value, label):
            notes.append("grey: no value (e.g. beyond the last generation)")
    else:
        _lines(ax, df, x, hue, value, se, label)
        ax.set_xscale("log" if logx else "linear")
        ax.set_yscale("log" if logy else "linear")
        if xlim:
            ax.set_xlim(*xlim)
    if notes:
        ax.set_title("; ".join(notes), fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    click.echo(str(path))


def _resolve_metric(con, metric: str, x: str) -> tuple[str, str, str | None]:
    """(view, value column, standard-error column or None) for a metric name."""
    views = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() "
                                       "WHERE NOT internal").fetchall()]
    columns = {v: {r[0] for r in con.execute(f"DESCRIBE {v}").fetchall()} for v in views}
    order = ["generations"] if x == "generation" else ["points", "generations"]
    for view in (v for v in order if v in columns):
        for value in (metric, f"{metric}_mean"):
            if value in columns[view] and not value.endswith("_se"):
                base = value.removesuffix("_mean")
                se = f"{base}_se" if f"{base}_se" in columns[view] else None
                return view, value, se
    known = sorted(c for v in columns.values() for c in v
                   if c.endswith(("_mean", "_median", "_fraction", "_runs")))
    fail(f"unknown metric {metric!r}; choose from {known}")
    raise AssertionError  # unreachable: fail raises


def _sweep_axes(out: str) -> dict:
    """The axes recorded in ``OUT/sweep.json`` (none without it); a damaged manifest is one
    line naming it."""
    manifest = Path(out) / "sweep.json"
    if not manifest.is_file():
        return {}
    try:
        record = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        fail(f"'{manifest}' is not a readable sweep manifest (damaged or truncated): "
             f"{_first_line(exc)}")
    axes = record.get("axes", {}) if isinstance(record, dict) else None
    if not isinstance(axes, dict):
        fail(f"'{manifest}' is not a sweep manifest: it has no 'axes' table")
    return axes


def _check_other_axes(out: str, df, used: set) -> None:
    """Every other axis must take one value among the rows, else points would pile up."""
    for axis in _sweep_axes(out):
        if axis in used or axis not in df.columns:
            continue
        count = df[axis].nunique(dropna=False)
        if count > 1:
            fail(f"axis '{axis}' takes {count} values in these rows; fix it with "
                 f"--where \"{axis} = …\" or plot it as --hue or --y")


def _lines(ax, df, x: str, hue: str | None, value: str, se: str | None, label: str) -> None:
    from ..plots import column_label

    groups = [(None, df)] if hue is None else list(df.groupby(hue, sort=True))
    for key, part in groups:
        part = part.sort_values(x)
        xs, ys = part[x].to_numpy(float), part[value].to_numpy(float)
        name = None if hue is None else f"{hue} = {_tick(key)}"
        line, = ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, ms=3, lw=1.5,
                        label=name)
        if se is not None:
            band = 2 * part[se].to_numpy(float)
            ax.fill_between(xs, ys - band, ys + band, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel(column_label(x))
    ax.set_ylabel(label)
    if hue is not None:
        ax.legend(frameon=False, fontsize=7, ncol=2 if len(groups) > 6 else 1,
                  title=column_label(hue), title_fontsize=7)


def _heatmap(ax, fig, df, x: str, y: str, value: str, label: str) -> bool:
    """Draw the heatmap; True when some cells are NaN (drawn grey)."""
    import matplotlib

    table = df.pivot_table(index=y, columns=x, values=value, aggfunc="first", dropna=False)
    grid = np.ma.masked_invalid(table.to_numpy(float))  # (y values, x values)
    # Grey NaN cells: e.g. a median beyond the horizon (most runs censored).
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
    image = ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(len(table.columns)), [_tick(v) for v in table.columns], rotation=45,
                  fontsize=7)
    ax.set_yticks(range(len(table.index)), [_tick(v) for v in table.index], fontsize=7)
    from ..plots import column_label

    ax.set_xlabel(column_label(x))
    ax.set_ylabel(column_label(y))
    fig.colorbar(image, ax=ax, label=label)
    return bool(np.ma.count_masked(grid))


def _tick(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
