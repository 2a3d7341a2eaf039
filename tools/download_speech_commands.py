"""Download and unpack Google's Speech Commands data set into the official layout.

    python tools/download_speech_commands.py [--version 0.01|0.02] [--out data/speech_commands_v0.01]

Stdlib only. Downloads to ``OUT.tar.gz.part``, unpacks into a temporary folder beside OUT and renames
it into place, so an interrupted run never leaves a half-unpacked data set. Fails with a one-line
message when offline.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib

PROG = "download_speech_commands.py"

URLS = {
    "0.01": "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
    "0.02": "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
}


def download(url: str, dest: str) -> None:
    part = dest + ".part"
    with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as f:
        total = int(response.headers.get("Content-Length", 0))
        done = 0
        while chunk := response.read(1 << 20):
            f.write(chunk)
            done += len(chunk)
            if total:
                print(f"\r{url}: {done / 2**20:.0f} / {total / 2**20:.0f} MiB", end="", file=sys.stderr)
    print(file=sys.stderr)
    os.replace(part, dest)


class UsageError(Exception):
    """A bad option value; ``str()`` is a one-line message (exit 1)."""


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors exit with 1, like the other tools (kws_tf.cli.UsageParser; this
    tool stays stdlib-only and runs before the package is installed)."""

    def error(self, message: str) -> None:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(1)


def check_out(out: str) -> None:
    """UsageError unless ``out`` can become the data set folder: not an existing file, and its nearest
    existing parent a folder we may write in. Checked before the 1.4 GB download."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out}: is a file, not a folder; give a folder path (it is created if missing)")
    existing = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"--out {out}: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: no permission to write in {existing}; choose another path")
    archive = os.path.abspath(out) + ".tar.gz"
    if os.path.exists(archive) and not os.path.isfile(archive):
        raise UsageError(f"--out {out}: {archive} (where the download goes) is not a file; move it away")


def unpack(archive: str, out: str) -> None:
    """Unpack into a temporary folder beside ``out``, then rename it into place; the temporary
    folder is removed on any failure."""
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=os.path.dirname(os.path.abspath(out)))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        os.replace(tmp, out)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    out = args.out or os.path.join("data", f"speech_commands_v{args.version}")
    if os.path.isdir(out) and os.listdir(out):
        print(f"{out} already exists; nothing to do (delete it to download again)")
        return 0
    check_out(out)
    url = URLS[args.version]
    archive = os.path.abspath(out) + ".tar.gz"
    try:
        os.makedirs(os.path.dirname(archive), exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create its folder ({exc.strerror}); choose another path") from None
    if not os.path.exists(archive):
        try:
            download(url, archive)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            raise UsageError(f"could not download {url} ({reason}); check the internet connection, "
                             f"or download it elsewhere and unpack it into {out}") from None
    try:
        unpack(archive, out)
    except EOFError:
        raise UsageError(f"{archive} is incomplete (an interrupted download?); delete it and download again") from None
    except (zlib.error, gzip.BadGzipFile) as exc:  # before OSError: BadGzipFile is one
        raise UsageError(f"{archive} is damaged ({_first_line(exc)}); delete it and download again") from None
    except tarfile.ReadError as exc:
        if "unexpected end" in str(exc):
            raise UsageError(f"{archive} is incomplete; delete it and download again") from None
        raise UsageError(f"{archive} is not a valid .tar.gz archive; delete it and download again") from None
    except tarfile.TarError as exc:
        raise UsageError(f"{archive} cannot be unpacked ({_first_line(exc)}); delete it and download again") from None
    except OSError as exc:
        raise UsageError(f"cannot unpack {archive} into {out} ({exc.strerror or _first_line(exc)}); "
                         "free some disk space or choose another --out") from None
    os.remove(archive)
    print(f"Speech Commands v{args.version} is in {out}")
    return 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog=PROG, allow_abbrev=False, description=__doc__.split("\n")[0])
    p.add_argument("--version", choices=sorted(URLS), default="0.01")
    p.add_argument("--out", help="target folder (default: data/speech_commands_vVERSION)")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (1)
        return int(exc.code or 0)
    try:
        return run(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
