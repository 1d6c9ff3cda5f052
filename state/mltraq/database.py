"""An MLtraq SQLite file, read without ever holding it.

MLtraq writes rows only at ``persist()``, and ``persist(if_exists="replace")``
deletes the experiment's row, inserts it again, then drops and recreates its
runs table in chunks of 1,000 rows, each a commit of its own. Its writer gives
up with "database is locked" if a reader holds a transaction for 5 s, so every
read here is one short autocommit statement on a ``mode=ro`` connection (the
file, its journal and its directory are never written), fully fetched before
the next one. Identifiers from the file (table and column names) are only ever
bound as parameters or double-quoted, so a table named like SQL stays a name.
Changes are noticed with ``PRAGMA data_version`` (it moves when another
connection commits) and the file's inode, mtime and size.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from state.mltraq.decode import Opaque, UnreadableValue, decode_blob, looks_serialized
from state.record import FileVersion

#: What marks an SQLite file: the first 16 bytes of every database.
SQLITE_HEADER = b"SQLite format 3\x00"
#: The ``experiments`` columns MLtraq writes (``unsafe_pickle`` too, which is never selected).
EXPERIMENT_COLUMNS = frozenset({"id_experiment", "name", "meta", "fields"})
#: A stored value longer than this (bytes of a blob, characters of a text) is not read: it is shown by its size.
MAX_VALUE_BYTES = 16 * 1024 * 1024
#: How long one statement waits for a writer's lock before the read is given up (and retried at the next poll).
BUSY_TIMEOUT_S = 0.5
TABLE_PREFIX = "experiment_"


class MltraqError(Exception):
    """The database (or one table of it) cannot be read now; the message says why in one line."""


class NotMltraq(MltraqError):
    """A readable SQLite file, but without MLtraq's ``experiments`` table."""


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def runs_table_name(experiment_name: str) -> str:
    """The runs table MLtraq derives from an experiment name (its ``sanitize_table_name``)."""
    return (TABLE_PREFIX + re.sub("[^0-9a-zA-Z]+", "_", experiment_name)).strip("_").lower()


def is_sqlite_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class ExperimentRow:
    """One row of ``experiments``, its blobs decoded (never ``unsafe_pickle``)."""

    id_experiment: str
    name: str
    meta: Any
    fields: Any


@dataclass(frozen=True, slots=True)
class RunsTable:
    """A runs table as read: every column ``PRAGMA table_info`` lists, in its order."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


def _value(raw: Any, size: int | None, decode: bool) -> Any:
    if size is not None:
        return Opaque(f"{size:,} bytes, over the {MAX_VALUE_BYTES // (1024 * 1024)} MiB limit: not read")
    if type(raw) is bytes:
        if decode and looks_serialized(raw):
            return decode_blob(raw)
        return Opaque(f"{len(raw):,} bytes")
    return raw


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


class MltraqDatabase:
    """One MLtraq database file, opened read-only; safe to share between threads (one read at a time)."""

    def __init__(self, path: Path | str):
        self.path = Path(os.path.abspath(path))
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._lock = threading.Lock()

    # -- the connection -----------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise MltraqError(f"no database at {self.path}")
        uri = f"file:{quote(str(self.path))}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise MltraqError(f"cannot open: {exc}") from None
        conn.execute("PRAGMA query_only = ON")
        return conn

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement, fully fetched (so no read lock outlives it); sqlite errors become ``MltraqError``."""
        with self._lock:
            try:
                st = os.stat(self.path)
            except OSError:
                self.close_unlocked()
                raise MltraqError(f"no database at {self.path}") from None
            if self._conn is None or st.st_ino != self._inode:
                self.close_unlocked()
                self._conn = self._connect()
                self._inode = st.st_ino
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
                    self.close_unlocked()  # a corrupt file: open afresh next time
                raise MltraqError(str(exc)) from None

    def close_unlocked(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self.close_unlocked()

    # -- what changed ---------------------------------------------------------------------
    def signature(self) -> tuple[int, FileVersion | None]:
        """``(data_version, file version)``: either moves when the database was written."""
        try:
            version: FileVersion | None = FileVersion.of(os.stat(self.path))
        except OSError:
            version = None
        return self._query("PRAGMA data_version")[0][0], version

    # -- reading ----------------------------------------------------------------------------
    def table_columns(self, table: str) -> tuple[str, ...]:
        """Every column of ``table`` (empty when there is no such table)."""
        return tuple(str(r[0]) for r in self._query("SELECT name FROM pragma_table_info(?)", (table,)))

    def check_mltraq(self) -> None:
        """Raise ``NotMltraq`` unless ``experiments`` has MLtraq's columns (``MltraqError`` if unreadable)."""
        missing = EXPERIMENT_COLUMNS - set(self.table_columns("experiments"))
        if missing:
            raise NotMltraq(f"{self.path.name} is an SQLite database but not MLtraq's (no experiments table with {', '.join(sorted(EXPERIMENT_COLUMNS))})")

    def experiments(self) -> list[ExperimentRow]:
        limit = MAX_VALUE_BYTES
        rows = self._query(
            "SELECT id_experiment, name,"
            " CASE WHEN length(meta) > ? THEN NULL ELSE meta END, CASE WHEN length(meta) > ? THEN length(meta) END,"
            " CASE WHEN length(fields) > ? THEN NULL ELSE fields END, CASE WHEN length(fields) > ? THEN length(fields) END"
            " FROM experiments ORDER BY rowid",
            (limit, limit, limit, limit),
        )
        return [
            ExperimentRow(_text(ident), _text(name), _value(meta, meta_size, True), _value(fields, fields_size, True))
            for ident, name, meta, meta_size, fields, fields_size in rows
        ]

    def runs_table(self, table: str, *, only: Sequence[str] | None = None, decode: frozenset[str] | None = None) -> RunsTable:
        """The rows of ``table``: all columns, or those of ``only`` it has; blobs decoded (all, or the ``decode`` ones).

        Raises ``MltraqError`` when the table does not exist (yet, or any more).
        """
        columns = self.table_columns(table)
        if not columns:
            raise MltraqError(f"no table {table}")
        if only is not None:
            columns = tuple(c for c in columns if c in only)
        if not columns:
            return RunsTable(table, (), ())
        parts = []
        for c in columns:
            q = quote_identifier(c)
            parts.append(f"CASE WHEN length({q}) > {MAX_VALUE_BYTES} THEN NULL ELSE {q} END")
            parts.append(f"CASE WHEN length({q}) > {MAX_VALUE_BYTES} THEN length({q}) END")
        raw = self._query(f"SELECT {', '.join(parts)} FROM {quote_identifier(table)} ORDER BY rowid")  # noqa: S608 (quoted)
        rows = tuple(
            tuple(_value(row[2 * i], row[2 * i + 1], decode is None or c in decode) for i, c in enumerate(columns))
            for row in raw
        )
        return RunsTable(table, columns, rows)

    def run_counts(self, table: str, id_experiment: str) -> tuple[int, int]:
        """``(rows in the table, rows of this experiment)``; raises ``MltraqError`` when there is no such table."""
        columns = self.table_columns(table)
        if not columns:
            raise MltraqError(f"no table {table}")
        q = quote_identifier(table)
        if "id_experiment" not in columns:
            (total,), = self._query(f"SELECT count(*) FROM {q}")  # noqa: S608 (quoted)
            return int(total), int(total)
        (total, mine), = self._query(f"SELECT count(*), count(CASE WHEN id_experiment = ? THEN 1 END) FROM {q}", (id_experiment,))  # noqa: S608
        return int(total), int(mine)


__all__ = [
    "BUSY_TIMEOUT_S",
    "ExperimentRow",
    "MAX_VALUE_BYTES",
    "MltraqDatabase",
    "MltraqError",
    "NotMltraq",
    "RunsTable",
    "UnreadableValue",
    "is_sqlite_file",
    "quote_identifier",
    "runs_table_name",
]
