"""Files written whole or not at all: the writer writes a temporary file beside the target, which then
replaces the target in one step (a rename on the same file system). A failed or interrupted write leaves
whatever was at the target as it was, and no temporary file behind. Standard library only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``path`` to write to; it replaces ``path`` when the block ends
    without an error and is removed when it does not (Ctrl-C included).

    Args:
        suffix: an extension the writer needs to see at the end of the name (e.g. ``".flac"``).
    """
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        try:
            os.remove(tmp)
        except OSError:  # replaced (gone), or never written
            pass
