"""Real file-system faults for one child process: it runs in a private mount namespace
(util-linux ``unshare``) where a directory is read-only or a small tmpfs; the mounts end with
the process, and the rest of the machine never sees them. Needs root (CI runs as root)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest


def _available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(
    not _available(), reason="needs root and mount namespaces (unshare --mount)"
)


def read_only(directory: Path) -> str:
    """Shell steps making ``directory`` read-only, even for root."""
    path = shlex.quote(str(directory))
    return f"mount --bind {path} {path} && mount -o remount,bind,ro {path}"


def small_disk(directory: Path, kilobytes: int) -> str:
    """Shell steps putting an empty tmpfs of ``kilobytes`` over ``directory``."""
    return f"mount -t tmpfs -o size={kilobytes}k tmpfs {shlex.quote(str(directory))}"


def within(steps: list[str], argv: list[str]) -> list[str]:
    """``argv`` run after ``steps`` in a namespace of its own; unshare and sh exec into it, so
    the child's pid is the program's (for `beside`)."""
    script = " && ".join([*steps, 'exec "$@"'])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]


def beside(pid: int, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the mount namespace of process ``pid``: it sees that process's files."""
    return subprocess.run(
        ["nsenter", "--target", str(pid), "--mount", *argv],
        capture_output=True,
        text=True,
        timeout=30,
    )
