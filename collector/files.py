"""Files and directories the collector creates are private to its user (0600 / 0700): they
hold usage per user and tenant and, when content is stored, prompts.

Only what is created here gets these modes; a file or directory that already exists keeps the
mode it has (``/var/lib`` or a directory the user made and shared on purpose).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents as 0700 (`Path.mkdir` would make the parents
    0777 less the umask)."""
    missing: list[Path] = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=DIR_MODE, exist_ok=True)


def create(path: Path) -> None:
    """Create ``path`` empty as 0600 in 0700 directories unless it exists; for a file that
    another library (SQLite) opens next and would create with the umask's mode."""
    make_dirs(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def open_private(path: Path, mode: str, **options: Any) -> IO[Any]:
    """``open(path, mode)``; a file it creates is 0600."""
    return open(path, mode, opener=_private, **options)


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, FILE_MODE)
