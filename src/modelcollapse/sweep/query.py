"""SQL over a sweep's output folder (DuckDB): views ``points`` and ``generations`` over its
Parquet tables, finished or not."""

from __future__ import annotations

from pathlib import Path

from .store import DONE_FILE, POINTS_DIR, TABLES

__all__ = ["connect", "query"]


def connect(out: str | Path):
    """An in-memory DuckDB connection with views ``points`` and ``generations`` over the
    sweep in ``out``: the whole-grid tables when the sweep completed, else the finished
    points' own files (so a running or interrupted sweep can be queried too)."""
    import duckdb

    out = Path(out)
    con = duckdb.connect()
    finished = sorted(p.parent for p in (out / POINTS_DIR).glob(f"*/{DONE_FILE}"))
    found = False
    for view, (table, part) in TABLES.items():
        if (out / table).is_file():
            sources = [out / table]
        elif finished:  # only finished points: an unfinished one may hold some of its files
            sources = [folder / part for folder in finished]
        else:
            continue
        found = True
        files = ", ".join("'" + str(path).replace("'", "''") + "'" for path in sources)
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM "
                    f"read_parquet([{files}], union_by_name = true)")
    if not found:
        raise ValueError(f"'out' ({out}) holds no sweep results (no points.parquet and no "
                         f"finished points)")
    return con


def query(out: str | Path, sql: str):
    """Run ``sql`` over the views ``points`` and ``generations``; a pandas DataFrame."""
    return connect(out).sql(sql).df()
