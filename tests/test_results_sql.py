"""SQL over a sweep folder reads that folder's tables and nothing else: every way out
(another file, a glob, a write, ATTACH, INSTALL, SET, a second statement, a --where that
closes its clause) is refused in one line and writes nothing; ordinary queries, joins, the
views of an unfinished sweep and plots still work; a damaged table or manifest is one line
naming the file, exit code 2."""

from __future__ import annotations

import json
import os
import shutil
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelcollapse.cli import main
from modelcollapse.sweep import SweepSpec, connect, query, run_sweep
from modelcollapse.sweep.query import QueryRefused

# Four points (n × K), five generations of eight runs: a sweep in about a second.
SPEC = dict(runs=8, generations=5, seed=3, vocab=10, support=5, S0=0.4, scenario="most-recent",
            axes={"n": [4, 8], "K": [1, 2]})


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def files(*folders: Path) -> dict[Path, tuple[int, int]]:
    """Every file under ``folders`` with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns)
            for folder in folders for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sql") / "sweep"
    with ThreadPoolExecutor(1) as pool:
        run_sweep(SweepSpec(**SPEC), out, executor=pool, store="netcdf", progress=False)
    return out


@pytest.fixture(scope="module")
def unfinished(sweep, tmp_path_factory) -> Path:
    """The same sweep before its whole-grid tables were written: the views read the points'
    own files."""
    out = tmp_path_factory.mktemp("unfinished") / "sweep"
    shutil.copytree(sweep, out)
    (out / "points.parquet").unlink()
    (out / "generations.parquet").unlink()
    return out


@pytest.fixture
def target(tmp_path, monkeypatch) -> Path:
    """A folder outside the sweep holding files a query must not read, and the working
    directory, where a relative path would write."""
    folder = tmp_path / "target"
    folder.mkdir()
    (folder / "secret.csv").write_text("a,b\n1,2\n")
    pq.write_table(pa.table({"secret": [42]}), folder / "secret.parquet")
    monkeypatch.chdir(folder)
    return folder


# --- what a query cannot touch ------------------------------------------------------------
ESCAPES = [
    # Files outside the views: DuckDB's own sandbox refuses them.
    ("SELECT * FROM read_csv('/etc/passwd')", "Permission Error"),
    ("SELECT * FROM read_text('{target}/secret.csv')", "Permission Error"),
    ("SELECT * FROM read_parquet('{target}/secret.parquet')", "Permission Error"),
    ("SELECT * FROM '{target}/secret.csv'", "Permission Error"),
    ("SELECT * FROM read_parquet('{climb}/secret.parquet')", "Permission Error"),
    ("SELECT * FROM glob('{target}/*')", "Permission Error"),
    ("SELECT * FROM glob('{out}/*')", "Permission Error"),
    ("SELECT * FROM read_text('{out}/sweep.json')", "Permission Error"),
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')", "Permission Error"),
    ("SELECT count(*) FROM points WHERE n IN (SELECT a FROM read_csv('{target}/secret.csv'))",
     "Permission Error"),
    # Writes, databases, extensions, settings: refused before DuckDB runs them.
    ("COPY points TO '{target}/stolen.csv'", "COPY refused"),
    ("COPY points TO 'relative.csv'", "COPY refused"),
    ("COPY (SELECT 1 AS x) TO '{out}/points.parquet' (USE_TMP_FILE false)", "COPY refused"),
    ("EXPORT DATABASE '{target}/db'", "EXPORT DATABASE refused"),
    ("ATTACH '{target}/new.duckdb' AS n", "ATTACH refused"),
    ("ATTACH '{out}/new.duckdb' AS n", "ATTACH refused"),
    ("INSTALL httpfs", "LOAD/INSTALL refused"),
    ("LOAD httpfs", "LOAD/INSTALL refused"),
    ("SET enable_external_access = true", "SET refused"),
    ("RESET allowed_paths", "SET refused"),
    ("PRAGMA enable_profiling", "PRAGMA refused"),
    ("CREATE TABLE t AS SELECT 1", "CREATE refused"),
    ("EXPLAIN ANALYZE COPY points TO '{out}/plan.csv'", "EXPLAIN COPY refused"),
    ("/* a */ EXPLAIN (ANALYZE, FORMAT json) COPY points TO 'plan.csv'", "EXPLAIN COPY refused"),
    ("SELECT 1; COPY points TO '{target}/second.csv'", "COPY refused"),
    ("COPY (PIVOT points ON K USING count(*)) TO '{target}/pivot.csv'",
     "a statement that runs as several refused"),
    ("SELECT * FROM query('COPY points TO ''{target}/inner.csv''')", "SQL error: Parser Error"),
    ("", "holds no statement"),
]


@pytest.mark.parametrize("sql, message", ESCAPES)
def test_a_query_reads_the_sweep_and_nothing_else(sweep, target, capsys, sql, message):
    climb = Path(os.path.relpath(target, sweep)).as_posix()
    sql = sql.format(out=sweep, target=target, climb=f"{sweep}/{climb}")
    before = files(sweep, target)
    code, out, err = cli(capsys, "results", "query", str(sweep), sql)
    assert code == 2 and out == ""
    assert message in one_line(err)
    assert files(sweep, target) == before  # nothing written, nothing changed


def test_duckdb_itself_refuses_what_the_statement_check_would(sweep, target):
    """The connection is fenced without the statement check too: other files, new files in
    OUT, databases and extensions are DuckDB's PermissionError; settings are locked."""
    con = connect(sweep)
    before = files(sweep, target)
    for sql in (f"SELECT * FROM read_csv('{target}/secret.csv')",
                f"COPY points TO '{target}/stolen.csv'", f"COPY points TO '{sweep}/new.csv'",
                f"EXPORT DATABASE '{sweep}/db'", f"ATTACH '{sweep}/new.duckdb' AS n",
                "INSTALL httpfs", "LOAD httpfs"):
        with pytest.raises(duckdb.PermissionException):
            con.execute(sql)
    for sql in ("SET enable_external_access = true", f"SET allowed_directories = ['{target}']",
                "RESET allowed_paths", "SET temp_directory = '.'"):
        with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
            con.execute(sql)
    assert files(sweep, target) == before
    with pytest.raises(QueryRefused, match="COPY refused"):
        query(sweep, f"COPY points TO '{target}/stolen.csv'")


# --- what a query can do ------------------------------------------------------------------
def test_queries_and_joins_work(sweep, capsys):
    sql = ("SELECT p.n, p.K, max(g.generation) AS last, count(*) AS rows FROM generations g "
           "JOIN points p USING (point_id) GROUP BY ALL ORDER BY p.n, p.K")
    code, out, err = cli(capsys, "results", "query", str(sweep), sql, "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["n"], r["K"], r["last"], r["rows"]) for r in rows] == [
        (4, 1, 5, 6), (4, 2, 5, 6), (8, 1, 5, 6), (8, 2, 5, 6)]
    for sql in ("WITH t AS (SELECT n FROM points) SELECT count(*) FROM t", "DESCRIBE points",
                "SUMMARIZE generations", "EXPLAIN ANALYZE SELECT * FROM points",
                "FROM points LIMIT 1", "PIVOT points ON K IN (1, 2) USING count(*) GROUP BY n",
                f"SELECT count(*) FROM read_parquet('{sweep}/points.parquet')"):
        code, out, err = cli(capsys, "results", "query", str(sweep), sql)
        assert code == 0 and out and err == "", (sql, err)


def test_views_of_an_unfinished_sweep_read_the_points_files(sweep, unfinished, capsys):
    sql = "SELECT point_id, collapse_time_mean FROM points ORDER BY point_id"
    assert query(unfinished, sql).equals(query(sweep, sql))
    con = connect(unfinished)
    assert con.execute("SELECT count(*) FROM generations").fetchone()[0] == 4 * 6
    code, out, _ = cli(capsys, "results", "query", str(unfinished),
                       "SELECT count(*) AS c FROM points", "--format", "csv")
    assert code == 0 and out.split() == ["c", "4"]
    assert not (unfinished / "points.parquet").exists()


# --- plot --where: one condition ------------------------------------------------------------
def test_plot_where_still_works(sweep, tmp_path, capsys):
    png = tmp_path / "t.png"
    code, out, err = cli(capsys, "results", "plot", str(sweep), "collapse_time_median",
                         "--x", "n", "--where", "K = 2", "--output", str(png))
    assert code == 0, err
    assert out.strip() == str(png) and png.read_bytes()[:4] == b"\x89PNG"
    code, _, err = cli(capsys, "results", "plot", str(sweep), "sigma", "--x", "generation",
                       "--hue", "n", "--where", "K = 2 -- a comment", "--output", str(png))
    assert code == 0, err


@pytest.mark.parametrize("where, message", [
    ("1=1) UNION SELECT * FROM points --", "is not one SQL condition"),
    ("K = 2; COPY points TO '{target}/stolen.csv'", "is not one SQL condition"),
    ("K = 2 ORDER BY n", "is not one SQL condition"),
    ("K = 2, n = 4", "is not one SQL condition"),
    ("K = (SELECT count(*) FROM read_csv('{target}/secret.csv'))", "Permission Error"),
    ("nope = 2", "SQL error: Binder Error"),
])
def test_plot_where_cannot_leave_its_condition(sweep, target, capsys, where, message):
    before = files(sweep, target)
    code, out, err = cli(capsys, "results", "plot", str(sweep), "sigma", "--x", "n",
                         "--where", where.format(target=target),
                         "--output", str(target / "p.png"))
    assert code == 2 and out == ""
    assert message in one_line(err)
    assert files(sweep, target) == before


# --- damaged inputs: one line naming the file, exit 2 --------------------------------------
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _scramble_pages(path: Path) -> None:
    """Flip every byte between the leading magic and the footer: the footer still reads, the
    values do not."""
    data = bytearray(path.read_bytes())
    footer = struct.unpack("<I", data[-8:-4])[0]
    for i in range(4, len(data) - 8 - footer):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _empty, _scramble_pages])
@pytest.mark.parametrize("finished, name", [
    (True, "points.parquet"), (True, "generations.parquet"),
    (False, "point.parquet"), (False, "generations.parquet")])
def test_a_damaged_table_is_one_line_naming_it(sweep, unfinished, tmp_path, capsys, damage,
                                               finished, name):
    out = tmp_path / "sweep"
    shutil.copytree(sweep if finished else unfinished, out)
    path = out / name if finished else sorted((out / "points").glob(f"*/{name}"))[1]
    damage(path)
    view = "points" if name.startswith("point") else "generations"
    code, stdout, err = cli(capsys, "results", "query", str(out), f"SELECT * FROM {view}")
    assert code == 2 and stdout == ""
    assert f"'{path}' is not a readable Parquet file" in one_line(err)


@pytest.mark.parametrize("text, message", [
    (b'{"axes": {"n": [4, 8], ', "is not a readable sweep manifest"),
    (b"", "is not a readable sweep manifest"),
    (b"\xff\xfe\x00", "is not a readable sweep manifest"),
    (b"[1, 2]", "is not a sweep manifest"),
])
def test_a_damaged_manifest_is_one_line_naming_it(sweep, tmp_path, capsys, text, message):
    out = tmp_path / "sweep"
    shutil.copytree(sweep, out)
    (out / "sweep.json").write_bytes(text)
    code, stdout, err = cli(capsys, "results", "plot", str(out), "collapse_time_median",
                            "--x", "n", "--where", "K = 2", "--output", str(tmp_path / "p.png"))
    assert code == 2 and stdout == ""
    line = one_line(err)
    assert message in line and str(out / "sweep.json") in line


def test_a_folder_that_is_not_a_sweep_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for folder, message in ((tmp_path / "empty", "holds no sweep results"),
                            (tmp_path / "missing", "is not a folder")):
        code, out, err = cli(capsys, "results", "query", str(folder), "SELECT 1")
        assert code == 2 and out == "" and message in one_line(err)
