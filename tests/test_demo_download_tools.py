"""tools/make_demo.py and tools/download_speech_commands.py: bad input gets one line on stderr and exit 1
(no traceback), --out is checked before any work, and a failed run leaves the user's files as they were.
Nothing here downloads: the downloader gets a fake archive beside --out, and its download is stubbed."""

from __future__ import annotations

import importlib.util
import io
import os
import tarfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_line_error(capsys, prog: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


# --- make_demo ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def make_demo():
    pytest.importorskip("soundfile")
    return load_tool("make_demo")


@pytest.fixture()
def existing(tmp_path):
    """A file the user already has at --out."""
    path = tmp_path / "demo.flac"
    path.write_bytes(b"the user's own recording")
    return path


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("args, expected", [
    (["--snr-db", "nan"], "--snr-db"),
    (["--snr-db", "inf"], "--snr-db"),
    (["--snr-db", "1e308"], "--snr-db"),
    (["--seed", "-1"], "--seed"),
    (["--words", ""], "--words"),
    (["--words", "Yes!", "../x"], "'Yes!', '../x'"),
])
def test_make_demo_bad_option_values_leave_the_existing_file(make_demo, existing, capsys, args, expected):
    before = listing(existing.parent)
    argv = (["--words", "stop"] if "--words" not in args else []) + args + ["--out", str(existing)]
    assert make_demo.main(argv) == 1
    assert expected in one_line_error(capsys, "make_demo.py")
    assert existing.read_bytes() == b"the user's own recording"
    assert listing(existing.parent) == before


def test_make_demo_checks_out_before_any_synthesis(make_demo, tmp_path, capsys, monkeypatch):
    def no_synthesis(*a, **k):
        raise AssertionError("synthesized before --out was checked")

    monkeypatch.setattr(make_demo, "render_word", no_synthesis)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "folder").mkdir()
    cases = [
        (tmp_path / "afile" / "d.flac", "is a file, not a folder"),
        (tmp_path / "afile" / "deeper" / "d.flac", "is a file, not a folder"),
        (tmp_path / "folder", "is a folder; give a file name"),
        (tmp_path / "demo.xyz", "cannot write '.xyz' files; end the name in .flac"),
        (tmp_path / "noext", "end the name in .flac"),
    ]
    for out, expected in cases:
        assert make_demo.main(["--words", "stop", "--out", str(out)]) == 1, out
        line = one_line_error(capsys, "make_demo.py")
        assert f"--out {out}" in line and expected in line, line
    assert listing(tmp_path) == ["afile", "folder"] and listing(tmp_path / "folder") == []


def test_make_demo_synthesis_error_is_one_line(make_demo, existing, capsys, monkeypatch):
    def failing(word, *a, **k):
        raise make_demo.SynthError(f"espeak-ng failed to render '{word}'")

    monkeypatch.setattr(make_demo, "render_word", failing)
    assert make_demo.main(["--words", "stop", "--out", str(existing)]) == 1
    assert "espeak-ng failed to render 'stop'" in one_line_error(capsys, "make_demo.py")
    assert existing.read_bytes() == b"the user's own recording"


def test_make_demo_failed_write_leaves_the_existing_file(make_demo, existing, capsys, monkeypatch):
    def broken_write(path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise RuntimeError("Error writing: disk full")

    monkeypatch.setattr(make_demo, "make_demo", lambda *a, **k: make_demo.np.zeros(1600, make_demo.np.float32))
    monkeypatch.setattr(make_demo.sf, "write", broken_write)
    assert make_demo.main(["--words", "stop", "--out", str(existing)]) == 1
    assert f"cannot write {existing}: Error writing: disk full" in one_line_error(capsys, "make_demo.py")
    assert existing.read_bytes() == b"the user's own recording"
    assert listing(existing.parent) == ["demo.flac"]  # no temporary file left behind


@pytest.mark.parametrize("name", ["demo.flac", "sub/dir/demo.wav"])
def test_make_demo_writes_the_file_atomically(make_demo, tmp_path, capsys, name):
    sf = pytest.importorskip("soundfile")
    out = tmp_path / name
    if name == "demo.flac":
        out.write_bytes(b"old")
    assert make_demo.main(["--words", "stop", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    audio, rate = sf.read(str(out))
    assert rate == 16000 and len(audio) > 16000
    assert sf.info(str(out)).format == ("FLAC" if name.endswith(".flac") else "WAV")
    assert listing(out.parent) == [out.name]


# --- download_speech_commands ------------------------------------------------------------------------


@pytest.fixture()
def downloader(monkeypatch):
    module = load_tool("download_speech_commands")

    def no_download(url, dest):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(module, "download", no_download)
    monkeypatch.setattr(module.urllib.request, "urlopen", no_download)
    return module


def fake_archive(path) -> bytes:
    """A small .tar.gz in the data set's layout, written to ``path``; returns its bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, size in (("yes/0a1b2c3d_nohash_0.wav", 40000), ("validation_list.txt", 30)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(os.urandom(size)))  # random: gzip cannot shrink it much
    data = buf.getvalue()
    path.write_bytes(data)
    return data


def test_download_unpacks_a_local_archive(downloader, tmp_path, capsys):
    fake_archive(tmp_path / "sc.tar.gz")
    assert downloader.main(["--out", str(tmp_path / "sc")]) == 0
    assert os.path.getsize(tmp_path / "sc" / "yes" / "0a1b2c3d_nohash_0.wav") == 40000
    assert listing(tmp_path) == ["sc"]  # archive removed, no temporary folder


def test_download_truncated_archive_is_one_line(downloader, tmp_path, capsys):
    data = fake_archive(tmp_path / "full.tar.gz")
    (tmp_path / "sc.tar.gz").write_bytes(data[: len(data) // 2])
    assert downloader.main(["--out", str(tmp_path / "sc")]) == 1
    line = one_line_error(capsys, "download_speech_commands.py")
    assert f"{tmp_path / 'sc.tar.gz'} is incomplete" in line and "delete it and download again" in line
    assert listing(tmp_path) == ["full.tar.gz", "sc.tar.gz"]  # no half-unpacked folder


def test_download_garbage_archive_is_one_line(downloader, tmp_path, capsys):
    (tmp_path / "sc.tar.gz").write_bytes(b"<html>not found</html>\n" * 20)
    assert downloader.main(["--out", str(tmp_path / "sc")]) == 1
    line = one_line_error(capsys, "download_speech_commands.py")
    assert "is not a valid .tar.gz archive; delete it and download again" in line
    assert listing(tmp_path) == ["sc.tar.gz"]


@pytest.mark.parametrize("out, expected", [
    ("afile", "--out {tmp}/afile: is a file, not a folder"),
    ("afile/sub", "--out {tmp}/afile/sub: {tmp}/afile is a file, not a folder"),
    ("afile/sub/deeper", "{tmp}/afile is a file, not a folder"),
])
def test_download_checks_out_before_downloading(downloader, tmp_path, capsys, out, expected):
    (tmp_path / "afile").write_text("the user's file")
    assert downloader.main(["--out", str(tmp_path / out)]) == 1
    assert expected.format(tmp=tmp_path) in one_line_error(capsys, "download_speech_commands.py")
    assert (tmp_path / "afile").read_text() == "the user's file" and listing(tmp_path) == ["afile"]


def test_download_usage_error_exits_1(downloader, capsys):
    assert downloader.main(["--version", "9"]) == 1
    assert "invalid choice: '9'" in capsys.readouterr().err
