"""SQLite files the router keeps beside the catalog: one way to open them privately and durably, and the
transaction every multi-statement change runs in.

The catalog (router/catalog.py) opens its own file (it checks for a missing catalog first, and journals
in DELETE mode with synchronous=EXTRA); a collection's side files (its kept raw inputs, its feedback log)
open through `open_private`.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def open_private(path: Path) -> sqlite3.Connection:
    """A connection to `path`, a file readable by this user only from its first byte; WAL journal with
    synchronous=FULL, so a committed transaction is on disk when the commit returns. Autocommit mode
    (isolation_level None): multi-statement changes go through `Transaction`."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the body or the commit fails."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite has already rolled back (e.g. after SQLITE_FULL); the hot journal undoes the rest
