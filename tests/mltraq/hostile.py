"""MLtraq-shaped databases written with sqlite3 directly: hostile values, odd names, half-done rewrites."""

from __future__ import annotations

import os
import pickle
import sqlite3
import uuid
from pathlib import Path
from typing import Any

SCHEMA = (
    "CREATE TABLE experiments (id_experiment CHAR(32) NOT NULL, name VARCHAR NOT NULL, meta BLOB,"
    " fields BLOB NOT NULL, unsafe_pickle BLOB, PRIMARY KEY (id_experiment), UNIQUE (name))"
)


class RunsCommand:
    """Unpickling this calls ``os.system``: the payload a malicious database would carry."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def touch_payload(marker: Path) -> bytes:
    return pickle.dumps(RunsCommand(f"touch {marker}"), protocol=5)


def datapak(value: Any) -> bytes:
    return pickle.dumps(value, protocol=5)


def bunch(value: dict) -> dict:
    return {"DATAPAK-0": "mltraq.Bunch-0", "value": value}


def meta(table: str, count: int) -> bytes:
    return datapak(bunch({"runs": bunch({"count": count, "table_name": table})}))


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(SCHEMA)
    return conn


def add_experiment(
    conn: sqlite3.Connection, name: str, runs: list[dict[str, Any]], *, table: str | None = None,
    fields: bytes | None = None, unsafe: bytes | None = None, ident: str | None = None, count: int | None = None,
) -> str:
    """An experiment row and its runs table, as MLtraq's persist() leaves them (each step its own commit)."""
    ident = ident or uuid.uuid4().hex
    table = table or f"experiment_{name}"
    conn.execute(
        "INSERT INTO experiments VALUES (?, ?, ?, ?, ?)",
        (ident, name, meta(table, len(runs) if count is None else count), fields or datapak(bunch({})), unsafe),
    )
    write_runs(conn, table, ident, runs)
    return ident


def write_runs(conn: sqlite3.Connection, table: str, ident: str, runs: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for r in runs for k in r))
    conn.execute(f"DROP TABLE IF EXISTS {q(table)}")
    conn.execute(f"CREATE TABLE {q(table)} (id_experiment CHAR(32), id_run CHAR(32){''.join(', ' + q(c) for c in columns)})")
    for run in runs:
        names = ["id_experiment", "id_run", *run]
        conn.execute(
            f"INSERT INTO {q(table)} ({', '.join(q(n) for n in names)}) VALUES ({', '.join('?' * len(names))})",
            (ident, uuid.uuid4().hex, *run.values()),
        )
