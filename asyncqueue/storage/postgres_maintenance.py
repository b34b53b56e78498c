"""Database maintenance on PostgreSQL: what fits a server database, and clear refusals.

``check`` looks at the queue's schema (tables, schema version, invalid indexes); ``analyze``
and ``vacuum`` run on the queue's tables only. A WAL checkpoint is the server's business,
and backups are ``pg_dump``'s and ``pg_restore``'s: those verbs raise
:class:`UnsupportedOperationError` naming the command to use.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from asyncqueue.errors import UnsupportedOperationError
from asyncqueue.storage import postgres_sql as sql
from asyncqueue.storage.maintenance import (
    TIME_COLUMNS,
    VacuumResult,
    WorkerInfo,
    time_problem,
    times_out_of_range_sql,
)
from asyncqueue.timebounds import MAX_TIMESTAMP, MIN_TIMESTAMP, stored_datetime

#: Time columns only the PostgreSQL schema has.
PG_EXTRA_TIME_COLUMNS: dict[str, tuple[str, ...]] = {"jobs": ("enqueued_run_at",)}


def unsupported_message(verb: str, schema: str | None) -> str:
    """Why a SQLite-only maintenance verb does not apply to PostgreSQL, and what to use."""
    instead = {
        "checkpoint": "PostgreSQL checkpoints on its own (run CHECKPOINT as a superuser to "
        "force one)",
        "backup": f"use pg_dump, e.g. pg_dump --schema={_schema_pattern(schema)} -Fc "
        "-f queue.dump DBNAME",
        # No --schema: the dump holds only the queue's schema, and with --schema
        # pg_restore would leave out its CREATE SCHEMA (a dropped schema stays missing).
        "restore": "use pg_restore on a dump of the schema, e.g. pg_restore --clean "
        "--if-exists -d DBNAME queue.dump",
    }[verb]
    return f"{verb} applies to SQLite only; {instead}"


def _schema_pattern(schema: str | None) -> str:
    """``schema`` as a pg_dump ``--schema`` pattern, quoted for a shell: a name with capitals
    or other characters a pattern would fold or read as wildcards goes in double quotes."""
    if schema is None:
        return "SCHEMA"
    if re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        return schema
    return shlex.quote(sql.quote_identifier(schema))


def unsupported(verb: str, where: str, *, schema: str | None = None) -> UnsupportedOperationError:
    """The error of a SQLite-only maintenance verb on PostgreSQL, saying what to use."""
    return UnsupportedOperationError(unsupported_message(verb, schema), where)


async def integrity_problems(conn: Any, schema: str) -> list[str]:
    """Missing tables, indexes or sequences, a schema version this asyncqueue cannot use,
    invalid indexes."""
    text, _ = sql.positional(sql.SELECT_TABLES)
    tables = {row[0] for row in await conn.fetch(text, schema)}
    problems = [
        f"table {schema}.{table} is missing" for table in sql.QUEUE_TABLES if table not in tables
    ]
    text, _ = sql.positional(sql.SELECT_RELATIONS)
    relations = {(row[0], row[1]) for row in await conn.fetch(text, schema)}
    problems += [
        f"{kind} {schema}.{name} is missing"
        for kind, code, names in (
            ("index", "i", sql.QUEUE_INDEXES),
            ("sequence", "S", sql.QUEUE_SEQUENCES),
        )
        for name in names
        if (name, code) not in relations
    ]
    if "schema_version" in tables:
        version = await conn.fetchval(sql.in_schema(sql.SELECT_VERSION, schema))
        if version != sql.SCHEMA_VERSION:
            problems.append(
                f"schema version {version} is not this asyncqueue's ({sql.SCHEMA_VERSION})"
            )
    text, _ = sql.positional(sql.INVALID_INDEXES)
    problems += [f"index {schema}.{row[0]} is invalid" for row in await conn.fetch(text, schema)]
    if not problems:
        problems += await _time_problems(conn, schema)
    return problems


async def _time_problems(conn: Any, schema: str) -> list[str]:
    """A line per table with rows holding a time reads can only show clamped."""
    problems = []
    for table, (_, columns) in TIME_COLUMNS.items():
        columns = (*columns, *PG_EXTRA_TIME_COLUMNS.get(table, ()))
        statement = times_out_of_range_sql(
            f"{sql.quote_identifier(schema)}.{table}", columns, "$1", "$2"
        )
        found = await conn.fetch(statement, MIN_TIMESTAMP, MAX_TIMESTAMP)
        if found:
            problems.append(time_problem(table, found, columns))
    return problems


async def _size(conn: Any, schema: str) -> int:
    text, _ = sql.positional(sql.TABLES_SIZE)
    return int(await conn.fetchval(text, schema))


async def vacuum(conn: Any, schema: str) -> VacuumResult:
    """``VACUUM (ANALYZE)`` of each queue table; sizes are the tables' with their indexes."""
    before = await _size(conn, schema)
    for table in sql.QUEUE_TABLES:
        await conn.execute(f"VACUUM (ANALYZE) {sql.quote_identifier(schema)}.{table}")
    return VacuumResult(before, await _size(conn, schema))


async def analyze(conn: Any, schema: str) -> None:
    """``ANALYZE`` of each queue table."""
    for table in sql.QUEUE_TABLES:
        await conn.execute(f"ANALYZE {sql.quote_identifier(schema)}.{table}")


def worker_info(row: Any) -> WorkerInfo:
    """A ``SELECT_WORKERS`` row as a :class:`WorkerInfo`."""
    return WorkerInfo(
        worker_id=row[0],
        host=row[1],
        pid=row[2],
        started_at=stored_datetime(row[3]),
        last_heartbeat=stored_datetime(row[4]),
        heartbeat_interval=row[5],
        jobs_processed=row[6],
        jobs_failed=row[7],
        alive=bool(row[8]),
        running_jobs=row[9],
    )
