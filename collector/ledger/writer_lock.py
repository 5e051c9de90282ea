"""One writer per ledger: an exclusive lock on ``<ledger>.lock``, held for the process's life.

Two processes appending the same trace files to one ledger would each commit every line (their
offsets are read before either commits). ``llm-collector run`` and ``ingest`` take this lock
before they read; read-only commands never take it, so they work beside the daemon.

It is a POSIX record lock (``fcntl.lockf``): the kernel drops it when the process ends, however
it ends, and a child process does not inherit it. It is also dropped when the process closes
*any* descriptor of the lock file, so this module is the only code that opens it, once per
process and ledger.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from collector import files
from collector.errors import describe
from collector.ledger.connection import LedgerError

_held: dict[Path, int] = {}


class LedgerLocked(LedgerError):
    """Another process holds the ledger's writer lock; the message names it."""


def lock_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".lock")


def acquire(ledger: Path, command: str) -> None:
    """Hold the writer lock of ``ledger`` until this process ends (again: a no-op); ``command``
    (e.g. "llm-collector run") is written into the lock file for the next one to name.

    Raises `LedgerLocked` naming the holder's pid and command when another process has it, and
    `LedgerError` when the lock file cannot be created.
    """
    path = lock_path(Path(ledger).resolve())
    if path in _held:
        return
    try:
        files.make_dirs(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, files.FILE_MODE)
    except OSError as error:
        raise LedgerError(f"cannot take the ledger's writer lock: {describe(error)}") from None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _holder(fd)
        os.close(fd)
        raise LedgerLocked(
            f"the ledger {ledger} is in use by {holder}: only one process may write to it."
            " Stop that process first; read-only commands (summary, status, alerts, report,"
            " export, backup) work beside it"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
    _held[path] = fd


def _holder(fd: int) -> str:
    """'pid N (command)' as the holder wrote it into the lock file."""
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    pid, _, command = text.partition(" ")
    if not pid.isdigit():
        return "another process"
    return f"pid {pid} ({command})" if command else f"pid {pid}"
