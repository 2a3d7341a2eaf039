"""One training run per folder. Two runs in one run folder would overwrite each other's best checkpoint
and resume backup without a word, and two runs exporting to one folder each other's models, so a run claims
its run folder and its export folder with a lock file next to each (``DIR.lock``, holding the process id)
and a second run stops with a one-line error."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager


class RunDirBusy(Exception):
    """Another live process trains in (or exports to) this folder."""


def lock_path(run_dir: str) -> str:
    return os.path.abspath(run_dir).rstrip(os.sep) + ".lock"


def _holder(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _age_s(path: str) -> float:
    try:
        return time.time() - os.path.getmtime(path)
    except OSError:
        return float("inf")


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows: keep the lock
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@contextmanager
def run_dir_lock(run_dir: str, what: str = "run folder", option: str = "--run-dir") -> Iterator[str]:
    """Hold ``run_dir``'s lock for the ``with`` block. A lock left by a process that is gone (a killed
    run) is taken over; one held by a live process raises ``RunDirBusy``, whose message names ``what``
    the folder is and the command-line ``option`` that picks another."""
    path = lock_path(run_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            pid = _holder(path)
            if pid is None and _age_s(path) < 10.0:  # just created, its process id not written yet
                raise RunDirBusy(f"{run_dir}: another training run is starting with this {what}; pass {option} DIR "
                                 f"(delete {path} if no such run is going)")
            if pid is not None and pid != os.getpid() and _alive(pid):
                raise RunDirBusy(f"{run_dir}: another training run (process {pid}) uses this {what}; wait for it "
                                 f"or pass {option} DIR (delete {path} if no such run is going)") from None
            try:
                os.remove(path)  # stale: its run was killed
            except FileNotFoundError:
                pass
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(str(os.getpid()))
    try:
        yield path
    finally:
        if _holder(path) == os.getpid():
            os.remove(path)
