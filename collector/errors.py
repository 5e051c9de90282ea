"""Describing errors in one line: what failed, on which file, and what to do.

The command line prints a `CollectorError` as one line (no traceback); so does the daemon
when it cannot start.
"""

from __future__ import annotations

import sqlite3

from schemas.errors import CollectorError


def describe(error: BaseException, ledger: object = None) -> str:
    """One line for an error a file or the ledger (at path ``ledger``) raised: the file, the
    cause, the remedy."""
    if isinstance(error, CollectorError):
        return str(error)
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}{_remedy(error)}"
    if isinstance(error, sqlite3.Error):
        where = f"the ledger {ledger}" if ledger else "the ledger"
        return f"{where}: {error}{_remedy(error)}"
    return f"{type(error).__name__}: {error}"


def _remedy(error: OSError | sqlite3.Error) -> str:
    text = str(error)
    if isinstance(error, PermissionError) or "readonly" in text:
        return "; check its permissions for this user, or point the configuration elsewhere"
    if "disk is full" in text or "No space left" in text or "quota" in text.lower():
        return "; free some space on that disk"
    if "unable to open" in text:
        return "; check that its directory exists and that this user may write there"
    if "malformed" in text or "not a database" in text:
        return (
            "; restore the last backup (llm-collector backup; see docs/operations.md#backups)"
            " or move the file aside to start a new ledger"
        )
    return ""
