"""Checks of output paths made before any work, so that a run never fails at its end
for a path it could have refused at its start."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vidanon.errors import OutputError


def check_writable(path: Path, folder: Path) -> None:
    """Refuses `path` when nothing can be written in `folder`, its folder (read-only, no
    permission), before any work: a file is made there and removed again."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".vidanon-probe-", dir=folder)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write in {folder} ({exc.strerror or type(exc).__name__})") from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass


def check_side_output(path: Path, what: str) -> None:
    """Refuses a path for a side file (`what`: "--tracks", "--json-summary") that could not be
    written at the end of the run: a missing or read-only folder, or a directory."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{path}: {what} directory {parent} does not exist")
    if path.is_dir():
        raise OutputError(f"{path}: {what} is a directory, expected a file path")
    check_writable(path, parent)
