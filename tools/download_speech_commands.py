"""Download and unpack Google's Speech Commands data set into the official layout.

    python tools/download_speech_commands.py [--version 0.01|0.02] [--out data/speech_commands_v0.01]

Stdlib only. Downloads to ``OUT.tar.gz.part``, unpacks into a temporary folder beside OUT and renames
it into place, so an interrupted run never leaves a half-unpacked data set. Fails with a one-line
message when offline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    p.add_argument("--version", choices=sorted(URLS), default="0.01")
    p.add_argument("--out", help="target folder (default: data/speech_commands_vVERSION)")
    args = p.parse_args(argv)
    out = args.out or os.path.join("data", f"speech_commands_v{args.version}")
    if os.path.isdir(out) and os.listdir(out):
        print(f"{out} already exists; nothing to do (delete it to download again)")
        return 0
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    archive = os.path.abspath(out) + ".tar.gz"
    try:
        if not os.path.exists(archive):
            download(URLS[args.version], archive)
        tmp = tempfile.mkdtemp(prefix=".unpack-", dir=parent)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        os.replace(tmp, out)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"error: could not download {URLS[args.version]} ({reason}); check the internet connection, "
              f"or download it elsewhere and unpack it into {out}", file=sys.stderr)
        return 1
    except tarfile.TarError as exc:
        print(f"error: {archive} is not a valid archive ({exc}); delete it and run again", file=sys.stderr)
        return 1
    finally:
        if "tmp" in locals() and os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    os.remove(archive)
    print(f"Speech Commands v{args.version} is in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
