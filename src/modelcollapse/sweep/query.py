"""SQL over a sweep's output folder (DuckDB): views ``points`` and ``generations`` over its
Parquet tables, finished or not, on a connection that may read those files and nothing else.

Two fences keep a query inside the folder. DuckDB's own: external access is off, the only
files it may open are the Parquet files behind the two views (``allowed_paths``), it spills
nothing to disk (``temp_directory = ''``), and the configuration is locked, so no ``SET`` can
undo any of it. And the statements: DuckDB lets a ``COPY … TO`` overwrite a file it may read,
so :func:`fetch` and :func:`query` run only statements that read (:func:`check_read_only`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .store import DONE_FILE, POINTS_DIR, TABLES

__all__ = ["QueryRefused", "SweepTableError", "check_read_only", "connect", "fetch", "query",
           "select_rows"]

#: What a query may be: DuckDB parses all but EXPLAIN (and a PIVOT with its values listed) as
#: SELECT; EXPLAIN counts when what it explains reads (EXPLAIN ANALYZE runs it).
READS = "SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN"
#: DuckDB's MULTI statements: a PIVOT that must create an enum type before it selects.
_SEVERAL = "a statement that runs as several"


class SweepTableError(ValueError):
    """A table of the sweep folder that cannot be read (a damaged or truncated file)."""


class QueryRefused(ValueError):
    """SQL that does more than read the sweep's tables."""


def _sources(out: Path) -> dict[str, list[Path]]:
    """View -> the Parquet files it reads: the whole-grid table when the sweep completed,
    else the finished points' own files (an unfinished point may hold some of its files)."""
    finished = sorted(p.parent for p in (out / POINTS_DIR).glob(f"*/{DONE_FILE}"))
    sources = {}
    for view, (table, part) in TABLES.items():
        if (out / table).is_file():
            sources[view] = [out / table]
        elif finished:
            sources[view] = [folder / part for folder in finished]
    return sources


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def connect(out: str | Path):
    """An in-memory DuckDB connection with views ``points`` and ``generations`` over the
    sweep in ``out``: the whole-grid tables when the sweep completed, else the finished
    points' own files (so a running or interrupted sweep can be queried too).

    The connection reads the files behind those views and no other file: every other path,
    glob, ``ATTACH``, ``INSTALL``/``LOAD`` and ``EXPORT`` is refused by DuckDB, and its
    configuration is locked. Run untrusted SQL through :func:`fetch`, which also refuses the
    statements that would write over the views' own files (``COPY … TO``).

    Raises :class:`SweepTableError` (a ``ValueError``) naming the file when one is damaged,
    and ``ValueError`` when ``out`` holds no sweep results.
    """
    import duckdb

    out = Path(os.path.abspath(out))
    if not out.is_dir():
        raise ValueError(f"'out' ({out}) is not a folder; give the output folder of a sweep")
    sources = _sources(out)
    if not sources:
        raise ValueError(f"'out' ({out}) holds no sweep results (no points.parquet and no "
                         f"finished points)")
    con = duckdb.connect()
    files = [path for paths in sources.values() for path in paths]
    con.execute(f"SET allowed_paths = [{', '.join(map(_literal, files))}]")
    con.execute("SET temp_directory = ''")  # spill nothing: a query writes no file at all
    con.execute("SET enable_external_access = false")
    for view, paths in sources.items():
        try:
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM "
                        f"read_parquet([{', '.join(map(_literal, paths))}], union_by_name = true)")
        except duckdb.Error as exc:
            _raise_if_damaged(con, paths)
            raise SweepTableError(f"'out' ({out}): its {view} table cannot be read: "
                                  f"{_first_line(exc)}") from None
    con.execute("SET lock_configuration = true")
    return con


def check_read_only(con, sql: str) -> None:
    """Raise :class:`QueryRefused` unless every statement in ``sql`` only reads, naming the
    first that does not (``COPY``, ``ATTACH``, ``SET``, ``CREATE``, …). A syntax error is
    DuckDB's own ``ParserException``."""
    statements = con.extract_statements(sql)
    if not statements:
        raise QueryRefused("the SQL holds no statement; e.g. \"SELECT * FROM points\"")
    for statement in statements:
        kind = _unread_kind(con, statement)
        if kind is not None:
            hint = (" (a PIVOT without IN (…) is one: list its values, PIVOT … ON column "
                    "IN (…))") if kind.endswith(_SEVERAL) else ""
            raise QueryRefused(f"{kind} refused: SQL over a sweep folder only reads "
                               f"({READS}){hint}")


def _unread_kind(con, statement) -> str | None:
    """None when ``statement`` only reads, else its kind in words."""
    import duckdb

    try:
        kind = statement.type
    except ValueError:  # a type newer than the Python binding's enum (e.g. UPDATE EXTENSIONS)
        return "a statement of a kind this DuckDB binding cannot name"
    if kind == duckdb.StatementType.SELECT:
        return None
    if kind == duckdb.StatementType.EXPLAIN:  # EXPLAIN ANALYZE runs what it explains
        inner = _explained(con, statement.query)
        if inner is None:
            return "EXPLAIN of an unrecognised statement"
        inner_kind = _unread_kind(con, inner)
        return None if inner_kind is None else f"EXPLAIN {inner_kind}"
    if kind == duckdb.StatementType.MULTI:
        return _SEVERAL
    return {"LOAD": "LOAD/INSTALL", "VARIABLE_SET": "SET VARIABLE",
            "EXPORT": "EXPORT DATABASE", "VACUUM": "VACUUM/ANALYZE"}.get(kind.name, kind.name)


def _explained(con, text: str):
    """The statement an EXPLAIN explains: the first suffix of ``text``, cut at a token after
    the EXPLAIN keyword, that parses as one statement (EXPLAIN's options do not)."""
    import duckdb

    tokens = [start for start, kind in duckdb.tokenize(text) if kind != duckdb.token_type.comment]
    for start in tokens[1:]:
        try:
            inner = con.extract_statements(text[start:])
        except duckdb.Error:
            continue
        if len(inner) == 1:
            return inner[0]
    return None


def fetch(con, sql: str):
    """Run ``sql`` on a connection from :func:`connect` after :func:`check_read_only`; a
    pandas DataFrame. A damaged table file raises :class:`SweepTableError` naming it; other
    errors are DuckDB's (``duckdb.Error``)."""
    check_read_only(con, sql)
    return _frame(con, lambda: con.sql(sql))


def select_rows(con, view: str, condition: str | None = None, **equal):
    """The rows of ``view`` where ``condition`` holds and each column of ``equal`` has its
    value; a pandas DataFrame. ``condition`` must be one SQL expression (``"K = 2 AND n >
    4"``): it is parsed as an expression, so it cannot close a clause or add a statement."""
    import duckdb

    relation = con.table(view)
    if condition:
        try:
            expression = duckdb.SQLExpression(condition)
        except duckdb.Error as exc:
            raise QueryRefused(f"{condition!r} is not one SQL condition: "
                               f"{_first_line(exc)}") from None
        relation = relation.filter(expression)
    for column, value in equal.items():
        relation = relation.filter(duckdb.ColumnExpression(column)
                                   == duckdb.ConstantExpression(value))
    return _frame(con, lambda: relation)


def query(out: str | Path, sql: str):
    """Run ``sql`` (statements that read only) over the views ``points`` and ``generations``
    of the sweep in ``out``; a pandas DataFrame."""
    return fetch(connect(out), sql)


# --- damaged files ---------------------------------------------------------------------------
def _frame(con, relation):
    """``relation().df()``; when it fails for a reason other than the SQL itself, look for a
    damaged file behind the views and name it."""
    import duckdb

    try:
        return relation().df()
    except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
            duckdb.PermissionException, duckdb.ConversionException,
            duckdb.OutOfRangeException, duckdb.InterruptException,
            duckdb.OutOfMemoryException):
        raise  # the query's own fault (or its size): no file to blame
    except duckdb.Error:
        paths = [Path(p) for p in con.execute("SELECT current_setting('allowed_paths')")
                 .fetchone()[0]]
        _raise_if_damaged(con, paths)
        raise


def _raise_if_damaged(con, paths: list[Path]) -> None:
    """Raise :class:`SweepTableError` for the first of ``paths`` DuckDB cannot read whole
    (footer and every value)."""
    import duckdb

    for path in paths:
        try:
            con.execute("SELECT max(hash(COLUMNS(*))) FROM read_parquet($path)",
                        {"path": str(path)}).fetchall()
        except duckdb.Error as exc:
            raise SweepTableError(f"'{path}' is not a readable Parquet file (damaged or "
                                  f"truncated): {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    line = str(exc).strip().splitlines()[0].rstrip(" :") if str(exc).strip() else ""
    return line or type(exc).__name__
