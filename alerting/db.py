"""Write transactions on a ledger connection that runs in autocommit mode, and the two kinds of
store function that write: those that commit on their own (`transaction`) and those that join
their caller's transaction (`joins_transaction`), so that a caller's batch commits at once.

Both kinds refuse the wrong state instead of doing something else: a joining function outside a
transaction would autocommit statement by statement, and a committing one inside a transaction
would commit the caller's half-done work.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class TransactionMisuse(RuntimeError):
    """A store function was called in the wrong transaction state (a bug in the caller)."""


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception; refused (`TransactionMisuse`)
    inside a transaction, whose work it would commit."""
    if db.in_transaction:
        raise TransactionMisuse(
            "this commits on its own; it was called inside a transaction: call it outside one"
        )
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back itself (a full disk)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def joins_transaction(
    function: Callable[Concatenate[sqlite3.Connection, P], R],
) -> Callable[Concatenate[sqlite3.Connection, P], R]:
    """Mark a store function whose writes join the caller's transaction on its first argument:
    called outside one, it raises `TransactionMisuse` and writes nothing."""

    @functools.wraps(function)
    def joining(db: sqlite3.Connection, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if not db.in_transaction:
            raise TransactionMisuse(
                f"{function.__module__}.{function.__qualname__} joins the caller's transaction;"
                " it was called outside one: call it inside one"
            )
        return function(db, *args, **kwargs)

    return joining
