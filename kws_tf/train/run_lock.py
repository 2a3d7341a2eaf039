"""One training run per folder. Two runs in one run folder would overwrite each other's best checkpoint
and resume backup without a word, and two runs exporting to one folder each other's models, so a run claims
its run folder and its export folder with a lock file next to each (``DIR.lock``) and a second run stops with
a one-line error.

The claim is an operating-system lock on that file (``flock``; ``msvcrt.locking`` on Windows, untested), not
the file's existence: the system drops it when its process ends, however it ends, so a killed run's lock file
is simply taken over, and two runs that find the same leftover file cannot both take it. The file holds the
holder's process id for the error message."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


class RunDirBusy(Exception):
    """Another live process trains in (or exports to) this folder, or the folder cannot be made (a file there)."""


def lock_path(run_dir: str) -> str:
    return os.path.abspath(run_dir).rstrip(os.sep) + ".lock"


def _holder(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _same_file(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (its holder may have removed it in between)."""
    try:
        st, now = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)


def _missing_folders(folder: str) -> list[str]:
    """The folders ``os.makedirs(folder)`` would create, deepest first."""
    missing = []
    folder = os.path.abspath(folder)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


def _remove_if_empty(folders: list[str]) -> None:
    """Remove the folders the lock made (deepest first) where nothing else was put in them: a run that
    failed before it wrote anything leaves no empty ``--out`` folder behind."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:  # something is in it now (or it went): keep it and the ones above
            return


@contextmanager
def run_dir_lock(run_dir: str, what: str = "run folder", option: str = "--run-dir") -> Iterator[str]:
    """Hold ``run_dir``'s lock for the ``with`` block. A lock file whose process is gone (a killed run) is
    taken over; one held by a live process raises ``RunDirBusy``, whose message names ``what`` the folder is
    and the command-line ``option`` that picks another."""
    path = lock_path(run_dir)
    made = _missing_folders(os.path.dirname(path))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(run_dir) and not os.path.isdir(run_dir):
            raise NotADirectoryError(20, "a file is there")
    except OSError as exc:
        raise RunDirBusy(f"{run_dir}: cannot be the {what} ({exc.strerror or exc}); pass {option} with a folder") from None
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        except FileNotFoundError:  # a run that failed beside us removed the folder it made: make it again
            os.makedirs(os.path.dirname(path), exist_ok=True)
            continue
        if not _try_lock(fd):
            os.close(fd)
            pid = _holder(path)
            who = f"another training run (process {pid})" if pid else "another training run"
            raise RunDirBusy(f"{run_dir}: {who} uses this {what}; wait for it or pass {option} DIR")
        if _same_file(fd, path):
            break
        os.close(fd)  # locked a file its holder removed on the way out: lock the one there now
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    try:
        yield path
    finally:
        if fcntl is not None:
            os.remove(path)  # while still locked, so no one takes the old file after us
            os.close(fd)
        else:
            os.close(fd)  # Windows cannot remove an open file
            try:
                os.remove(path)
            except OSError:
                pass
        _remove_if_empty(made)
