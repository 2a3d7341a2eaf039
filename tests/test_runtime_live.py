"""``python -m kws_tf.live``: the loop with an injected block source (fast), the messages for a
missing PortAudio, and a real PortAudio stream from a PulseAudio virtual microphone fed a WAV file."""

from __future__ import annotations

import ctypes.util
import itertools
import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
import soundfile as sf
import soxr

from kws_tf import live
from runtime_fakes import fake_transcriber, synth

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))
SPEECH = [("", 0.5), ("stop", 0.5), ("", 0.3), ("one", 0.5), ("", 0.3), ("two", 0.5), ("", 2.5)]


def blocks_44k(audio: np.ndarray, block: int = 2205):
    x = soxr.resample(audio, 16000, 44100).astype(np.float32)
    return [x[i:i + block, None] for i in range(0, len(x), block)]  # (samples, 1) like PortAudio


def test_loop_with_injected_source(tmp_path):
    lines = []
    stats = live.run_live(fake_transcriber(), blocks_44k(synth(SPEECH)), 44100, save_dir=str(tmp_path / "saved"),
                          emit=lines.append)
    assert stats.keywords == 1 and stats.utterances == 1 and len(lines) == 2
    assert "keyword" in lines[0] and lines[1].endswith("text     one two")
    assert abs(stats.audio_s - 5.1) < 0.05 and len(stats.feed_ms) == len(blocks_44k(synth(SPEECH)))
    (saved,) = stats.saved
    audio, rate = sf.read(saved)
    assert rate == 16000 and 2.5 < len(audio) / rate < 5.0  # from before the keyword to the pause


def test_duration_and_ctrl_c_stop_cleanly():
    stats = live.run_live(fake_transcriber(), blocks_44k(synth(SPEECH)), 44100, duration_s=1.0, emit=lambda _: None)
    assert stats.audio_s == 1.0
    closed = []

    def source():
        try:
            yield from blocks_44k(synth([("", 1.0)]))
            raise KeyboardInterrupt
        finally:
            closed.append(True)
    stats = live.run_live(fake_transcriber(), source(), 44100, emit=lambda _: None)
    assert 0.95 < stats.audio_s <= 1.0 and closed == [True]


def test_bad_options_and_an_unwritable_save_dir_stop_before_listening(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for argv, message in ((["--threshold", "5"], "--threshold must be between 0 and 1, not 5.0"),
                          (["--block-ms", "0"], "--block-ms and --duration must be more than 0"),
                          (["--save-dir", str(a_file)], f"--save-dir {a_file}: is a file, not a folder"),
                          (["--save-dir", str(a_file / "sub")], f"--save-dir {a_file / 'sub'}: cannot write there")):
        assert live.main(argv) == 1, argv
        err = capsys.readouterr().err
        assert f"{live.PROG}: error: {message}" in err and "listening" not in err and len(err.splitlines()) == 1


def test_an_utterance_that_cannot_be_saved_is_reported_and_listening_goes_on(tmp_path, capsys, monkeypatch):
    def full(*_args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(live, "_save", full)
    lines = []
    stats = live.run_live(fake_transcriber(), blocks_44k(synth(SPEECH + SPEECH)), 44100, save_dir=str(tmp_path),
                          emit=lines.append)
    assert stats.utterances == 2 and stats.saved == [] and lines[-1].endswith("text     one two")
    err = capsys.readouterr().err
    assert err.count(f"could not save the utterance in {tmp_path} (No space left on device); listening goes on") == 2


def test_missing_portaudio_gives_one_line_saying_what_to_install(tmp_path):
    fake = tmp_path / "fake_mods"
    fake.mkdir()
    (fake / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), REPO])}
    proc = subprocess.run([sys.executable, "-m", "kws_tf.live", "--models", str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 1
    assert "libportaudio2" in proc.stderr and "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1


# --- a real PortAudio stream: PulseAudio null sink, its monitor as the default ALSA input ---

def _pactl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10, check=check)


@pytest.fixture
def virtual_mic():
    """The name of a null sink whose monitor is the default input; PulseAudio is started (and
    stopped afterwards) when it is not running."""
    missing = [b for b in ("pulseaudio", "pactl", "paplay") if shutil.which(b) is None]
    if missing or ctypes.util.find_library("portaudio") is None:
        pytest.skip(f"virtual microphone needs the Debian packages pulseaudio pulseaudio-utils libasound2-plugins "
                    f"libportaudio2 (missing: {' '.join(missing) or 'libportaudio2'})")
    started = _pactl("info", check=False).returncode != 0
    if started:
        subprocess.run(["pulseaudio", "-D", "--exit-idle-time=-1", "--system=false", "--disallow-exit"],
                       capture_output=True, timeout=30)
        for _ in range(50):
            if _pactl("info", check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.skip("pulseaudio did not start")
    sink = f"kwsmic{uuid.uuid4().hex[:8]}"
    module = _pactl("load-module", "module-null-sink", f"sink_name={sink}", "rate=16000", "channels=1").stdout.strip()
    previous = _pactl("get-default-source", check=False).stdout.strip()
    _pactl("set-default-source", f"{sink}.monitor")
    try:
        yield sink
    finally:
        if previous:
            _pactl("set-default-source", previous, check=False)
        _pactl("unload-module", module, check=False)
        if started:
            subprocess.run(["pulseaudio", "--kill"], capture_output=True, timeout=30)


HELPER = """
import sys
sys.path[:0] = [{tests!r}, {repo!r}]
from kws_tf import live
from runtime_fakes import fake_transcriber
sd = live.import_sounddevice()
source = live.MicrophoneSource(sd, "default")
print("listening", source.rate_hz, file=sys.stderr, flush=True)
stats = live.run_live(fake_transcriber(), source, source.rate_hz, save_dir={save!r}, duration_s=float(sys.argv[1]),
                      emit=lambda line: print(line, flush=True))
print("overflows", source.overflows, "saved", len(stats.saved), flush=True)
"""


def _listen_then_play(cmd: list[str], wav: str, sink: str, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": REPO})
    banner = proc.stderr.readline()  # the stream is open once this line is out
    assert "listening" in banner, banner + proc.stderr.read()
    time.sleep(0.3)
    subprocess.run(["paplay", f"--device={sink}", wav], check=True, timeout=30)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, banner + err)


def test_virtual_microphone_through_portaudio(virtual_mic, tmp_path):
    wav = str(tmp_path / "speech.wav")
    sf.write(wav, synth(SPEECH), 16000, subtype="PCM_16")
    helper = tmp_path / "helper.py"
    helper.write_text(HELPER.format(tests=TESTS, repo=REPO, save=str(tmp_path / "saved")))
    result = _listen_then_play([sys.executable, str(helper), "7"], wav, virtual_mic)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum("keyword" in line for line in lines) == 1, result.stdout
    assert any(line.endswith("text     one two") for line in lines), result.stdout
    assert lines[-1].startswith("overflows 0 saved 1")


def test_live_cli_with_exported_models(virtual_mic, tiny_models_dir, tmp_path):
    wav = str(tmp_path / "speech.wav")
    sf.write(wav, synth(SPEECH), 16000, subtype="PCM_16")
    cmd = [sys.executable, "-m", "kws_tf.live", "--models", tiny_models_dir, "--device", "default", "--duration", "5",
           "--save-dir", str(tmp_path / "saved")]
    result = _listen_then_play(cmd, wav, virtual_mic)
    assert result.returncode == 0, result.stderr
    assert "5.0 s of audio" in result.stderr and "0 input overflow(s)" in result.stderr, result.stderr


def test_live_transcribes_the_demo_with_the_shipped_models(virtual_mic, tmp_path):
    """The issue's end-to-end check: the demo recording ("stop go left yes"), played into the virtual
    microphone, transcribed by `python -m kws_tf.live` with the models in saved_models/."""
    shipped = os.path.join(REPO, "saved_models")
    demo = os.path.join(REPO, "demo", "stop_go_left_yes.flac")
    if not os.path.exists(os.path.join(shipped, "kws", "model.json")):
        pytest.skip("no shipped models in saved_models/")
    wav = str(tmp_path / "demo.wav")
    audio, rate = sf.read(demo, dtype="float32")
    sf.write(wav, audio, rate, subtype="PCM_16")
    cmd = [sys.executable, "-m", "kws_tf.live", "--models", shipped, "--device", "default", "--duration", "9"]
    result = _listen_then_play(cmd, wav, virtual_mic)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum("keyword" in line for line in lines) == 1, result.stdout
    assert any(line.endswith("go left yes") for line in lines), result.stdout


def test_the_utterance_in_progress_is_printed_and_kept_when_listening_ends(tmp_path):
    """Words followed by no pause (the source ends, --duration is reached, or Ctrl-C comes first) are still
    written down and kept: the loop ends the stream with Transcriber.finish."""
    no_pause = SPEECH[:-1] + [("", 0.3)]  # 0.3 s after "two", far less than the decoder's pause
    for ending in ("source ends", "ctrl-c"):
        def source():
            yield from blocks_44k(synth(no_pause))
            if ending == "ctrl-c":
                raise KeyboardInterrupt
        lines = []
        stats = live.run_live(fake_transcriber(), source(), 44100, save_dir=str(tmp_path / ending), emit=lines.append)
        assert stats.keywords == 1 and stats.utterances == 1, ending
        assert lines[-1].endswith("text     one two") and len(stats.saved) == 1, ending
    lines = []
    stats = live.run_live(fake_transcriber(), blocks_44k(synth(SPEECH)), 44100, duration_s=3.0, emit=lines.append)
    assert stats.audio_s == 3.0 and stats.utterances == 1 and lines[-1].endswith("text     one two")


def test_a_save_folder_gone_while_listening_is_a_warning_not_a_traceback(tmp_path, capsys):
    """soundfile reports a failed write with its own error (not OSError): the save is reported in one line and
    listening goes on, as for a full disk."""
    save_dir = tmp_path / "saved"

    def source():
        blocks = blocks_44k(synth(SPEECH))
        yield blocks[0]
        shutil.rmtree(save_dir)  # e.g. an unmounted card
        yield from blocks[1:]
    lines = []
    stats = live.run_live(fake_transcriber(), source(), 44100, save_dir=str(save_dir), emit=lines.append)
    assert stats.utterances == 1 and stats.saved == [] and lines[-1].endswith("text     one two")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{live.PROG}: warning: could not save the utterance in {save_dir} (cannot write")
    assert err[0].endswith("listening goes on")


LONG_NO_PAUSE = [("", 0.5)] + [("one", 0.5), ("", 0.3), ("two", 0.5), ("", 0.3)] * 12 + [("", 3.0)]  # 19.2 s of words


def test_a_long_ungated_utterance_is_kept_whole(tmp_path, capsys):
    """--no-gate: an utterance ends only at a pause, so one can run far past the gated limit; all of it is saved
    (before, only the last 13 s were held)."""
    stats = live.run_live(fake_transcriber("no_gate"), blocks_44k(synth(LONG_NO_PAUSE)), 44100,
                          save_dir=str(tmp_path), emit=lambda _: None)
    (saved,) = stats.saved
    audio, rate = sf.read(saved)
    assert 21.0 < len(audio) / rate < 22.0 and capsys.readouterr().err == ""  # from 0 s to past the last word


def test_an_utterance_longer_than_the_history_is_saved_with_a_warning(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(live, "UNGATED_HISTORY_S", 8.0)
    stats = live.run_live(fake_transcriber("no_gate"), blocks_44k(synth(LONG_NO_PAUSE)), 44100,
                          save_dir=str(tmp_path), emit=lambda _: None)
    (saved,) = stats.saved
    audio, rate = sf.read(saved)
    assert 7.0 < len(audio) / rate <= 8.0  # the last 8 s held, up to the utterance's end
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith(f"{live.PROG}: warning: the utterance ending at ")
    assert re.search(r"kept without its first 1[0-9]\.[0-9] s \(only the last 8 s of audio are held\)$", err), err


def test_audio_history_keeps_at_least_its_capacity_and_slices_by_absolute_time():
    history = live._AudioHistory(1.0, 10)
    for i in range(5):
        history.append(np.full(4, i, np.float32))
    assert history.end == 20 and history.begin <= 10 and history.begin == 8  # blocks are kept whole
    assert history.slice_s(0.0, 2.0).tolist() == [2] * 4 + [3] * 4 + [4] * 4
    assert history.slice_s(1.1, 1.3).tolist() == [2, 3] and history.slice_s(1.9, 5.0).tolist() == [4]
    assert history.slice_s(1.5, 1.2).size == 0


class FakeSounddevice:
    """sounddevice's surface that MicrophoneSource uses; the stream delivers ``blocks`` as soon as it starts."""

    class PortAudioError(Exception):
        pass

    class Status:
        input_overflow = False

    def __init__(self, blocks, takes_channels=(1, 2), rate=16000):
        self.blocks, self.takes, self.rate, self.opened = blocks, takes_channels, rate, []

    def query_devices(self, device, kind):
        return {"name": "fake mic", "default_samplerate": float(self.rate), "max_input_channels": max(self.takes)}

    def check_input_settings(self, device=None, channels=None, dtype=None, samplerate=None):
        if channels not in self.takes:
            raise self.PortAudioError("Invalid number of channels [PaErrorCode -9998]")

    def InputStream(self, device, samplerate, channels, dtype, blocksize, callback):
        self.check_input_settings(channels=channels)
        self.opened.append(channels)
        sd = self

        class Stream:
            def __enter__(self):
                for block in sd.blocks:
                    callback(np.repeat(block[:, None], channels, axis=1) if block.ndim == 1 else block,
                             len(block), None, sd.Status())

            def __exit__(self, *exc):
                return False
        return Stream()


def test_a_stereo_only_microphone_is_opened_in_stereo_and_mixed_down():
    left_right = np.stack([np.full(800, 0.2, np.float32), np.full(800, 0.4, np.float32)], axis=1)
    sd = FakeSounddevice([left_right] * 3, takes_channels=(2,))
    source = live.MicrophoneSource(sd, None, 0.05)
    blocks = list(itertools.islice(iter(source), 3))
    assert sd.opened == [2] and [b.shape for b in blocks] == [(800,)] * 3
    assert np.allclose(np.concatenate(blocks), 0.3)
    sd_mono = FakeSounddevice([np.zeros(800, np.float32)])
    list(itertools.islice(iter(live.MicrophoneSource(sd_mono, None, 0.05)), 1))
    assert sd_mono.opened == [1]


def test_models_falling_behind_drop_blocks_with_a_warning_rather_than_queue_without_end(capsys):
    """The microphone delivers 8 s of 1 s blocks before the models take one: at most QUEUE_S (5 s) wait."""
    sd = FakeSounddevice([np.full(16000, i, np.float32) for i in range(8)])
    source = live.MicrophoneSource(sd, None, 1.0)
    blocks = list(itertools.islice(iter(source), 5))
    assert [b[0] for b in blocks] == [3, 4, 5, 6, 7] and source.dropped_frames == 3 * 16000  # the newest 5 s kept
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith(f"{live.PROG}: warning: the models fall behind the microphone; 3.0 s of audio dropped")


def test_large_blocks_are_not_mistaken_for_a_silent_device():
    """A 3 s block takes 3 s to come: the wait for audio is longer than a block (before: 3 s for any size)."""
    source = live.MicrophoneSource(FakeSounddevice([]), None, 3.0)
    assert source._silence_s > 2 * 3.0
