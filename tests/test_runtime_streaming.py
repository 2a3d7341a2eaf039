"""Streaming = batch: the same events whatever the block sizes; the window padding; constant memory;
the TFLite wrapper on exported models (float32 and int8)."""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pytest

from kws_tf.config import DecoderConfig
from kws_tf.runtime import Transcriber
from kws_tf.sidecar import ModelDirError
from kws_tf.tflite_model import ModelLoadError, TFLiteModel, _quantize
from runtime_fakes import KWS_FRAMES, fake_transcriber, synth

CHUNKS = (1, 160, 1000, 16000)
SPEECH = [("", 0.6), ("stop", 0.5), ("", 0.3), ("one", 0.5), ("", 0.2), ("two", 0.5), ("", 1.6), ("stop", 0.5),
          ("three", 0.5), ("", 0.8)]


def events_in_chunks(tr: Transcriber, audio: np.ndarray, chunk: int) -> list:
    tr.reset()
    events = []
    for i in range(0, len(audio), chunk):
        events += tr.feed(audio[i:i + chunk])
    return events + tr.finish()


@pytest.mark.parametrize("mode", ["gated", "no_gate"])
@pytest.mark.parametrize("decoder", [DecoderConfig(), DecoderConfig(max_word_s=0.3, min_windows=2)])
def test_chunk_invariance_with_stand_in_models(mode, decoder):
    audio = synth(SPEECH)
    tr = fake_transcriber(mode, decoder=decoder)
    reference = events_in_chunks(tr, audio, len(audio))
    assert any(e.kind == "keyword" for e in reference) and any(e.kind == "word" for e in reference)
    for chunk in CHUNKS:
        assert events_in_chunks(tr, audio, chunk) == reference, chunk


def test_chunk_invariance_with_exported_tflite_models(tiny_models_dir):
    audio = synth(SPEECH, seed=3)[: 4 * 16000]
    # Thresholds at zero so the untrained tiny models produce events to compare.
    tr = Transcriber.from_dir(tiny_models_dir, mode="no_gate", detector_overrides={"threshold": 0.0},
                              decoder_overrides={"threshold": 0.0})
    tr.labels = [label.strip("_") for label in tr.labels]  # the untrained model may favour _silence_
    reference = events_in_chunks(tr, audio, len(audio))
    assert any(e.kind == "keyword" for e in reference) and any(e.kind == "word" for e in reference)
    for chunk in CHUNKS:
        assert events_in_chunks(tr, audio, chunk) == reference, chunk


def test_keyword_window_is_left_padded_with_silence_and_hops_are_fixed():
    tr = fake_transcriber()
    seen = []
    inner = tr.kws_runner
    tr.kws_runner = lambda x: (seen.append(x.copy()), inner(x))[1]
    tr.reset()
    tr.feed(synth([("one", 0.5)]))
    assert len(seen) == 0.5 // 0.2  # one run per 0.2 s hop whose frames are complete
    first = seen[0]
    assert first.shape == (KWS_FRAMES, 40)
    np.testing.assert_array_equal(first[: KWS_FRAMES - 20], np.float32(math.log(1e-6)))
    assert first[-1].max() > 0.0  # the newest frames are the tone


def test_memory_stays_bounded_on_long_streams():
    tr = fake_transcriber("no_gate")
    tr.reset()
    block = synth([("", 5.0)])
    for _ in range(12):  # a minute
        tr.feed(block)
    assert len(tr._frames._data) <= 2 * tr._frames.keep
    assert tr._mel._count < 16000


def test_quantize_helper_rounds_and_saturates():
    q = _quantize(np.array([-10.0, 0.0, 0.26, 10.0]), np.dtype(np.int8), 0.05, -3)
    np.testing.assert_array_equal(q, [-128, -3, 2, 127])


def test_tflite_models_run_in_both_precisions(tiny_models_dir):
    rng = np.random.default_rng(0)
    for precision in ("float32", "int8"):
        tr = Transcriber.from_dir(tiny_models_dir, precision=precision)
        kws = tr.kws_runner(rng.standard_normal((tr.kws_frames, 40)).astype(np.float32))
        assert kws.shape == ((tr.kws_frames - tr.kernel_frames) // tr.stride_frames + 1,)
        assert np.all((kws >= 0) & (kws <= 1))
        words = tr.word_runner(rng.standard_normal((tr.word_frames, 40)).astype(np.float32))
        assert words.shape == (len(tr.labels),) and abs(float(words.sum()) - 1.0) < 0.02  # int8 output steps are 1/256


def test_unusable_model_folders_give_one_line_errors(tmp_path, tiny_models_dir):
    with pytest.raises(ModelDirError, match="not found"):
        Transcriber.from_dir(str(tmp_path))
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelLoadError, match="cannot load"):
        TFLiteModel(str(bad))
    with pytest.raises(ModelDirError, match="no float16 model"):
        Transcriber.from_dir(tiny_models_dir, precision="float16")

    # A word model whose front end differs from the keyword model's (say, one trained with the presets dropped beside
    # a keyword model whose sidecar switches remove_dc on): the error names the setting and both sidecars.
    def words_remove_dc(models_dir):
        with open(os.path.join(models_dir, "words", "model.json"), encoding="utf-8") as f:
            return json.load(f)["features"].get("remove_dc", False)
    original = words_remove_dc(tiny_models_dir)
    mixed = str(tmp_path / "mixed")
    shutil.copytree(tiny_models_dir, mixed)
    sidecar_file = os.path.join(mixed, "words", "model.json")
    with open(sidecar_file, encoding="utf-8") as f:
        sidecar = json.load(f)
    sidecar["features"]["remove_dc"] = not sidecar["features"].get("remove_dc", False)
    with open(sidecar_file, "w", encoding="utf-8") as f:
        json.dump(sidecar, f)
    with pytest.raises(ModelDirError) as e:
        Transcriber.from_dir(mixed)
    msg = str(e.value)
    assert "remove_dc" in msg and "kws/model.json" in msg and "words/model.json" in msg and "\n" not in msg
    assert "n_mels" not in msg  # only the settings that differ
    assert words_remove_dc(mixed) != original  # the copy was edited ...
    assert words_remove_dc(tiny_models_dir) == original  # ... and the shared fixture's sidecar was not


def test_hand_edited_or_mixed_up_model_folders_fail_at_load_naming_the_file(tmp_path, tiny_models_dir):
    """A sidecar value of the wrong type, or a .tflite file copied from the other model, fails when the folder
    loads (one line naming the file), not later on every audio file."""
    typo = str(tmp_path / "typo")
    shutil.copytree(tiny_models_dir, typo)
    sidecar_file = os.path.join(typo, "kws", "model.json")
    with open(sidecar_file, encoding="utf-8") as f:
        sidecar = json.load(f)
    sidecar["thresholds"]["detector"]["threshold"] = "high"
    with open(sidecar_file, "w", encoding="utf-8") as f:
        json.dump(sidecar, f)
    with pytest.raises(ModelDirError, match=r"kws/model\.json: threshold is 'high', not a number; correct it"):
        Transcriber.from_dir(typo)

    for task, other in (("kws", "words"), ("words", "kws")):
        swapped = str(tmp_path / f"swapped_{task}")
        shutil.copytree(tiny_models_dir, swapped)
        shutil.copy(os.path.join(tiny_models_dir, other, "float32.tflite"), os.path.join(swapped, task, "float32.tflite"))
        with pytest.raises(ModelLoadError) as e:
            Transcriber.from_dir(swapped)
        assert f"{task}/float32.tflite: takes input" in str(e.value) and "belongs to another model" in str(e.value)
        Transcriber.from_dir(swapped, precision="int8")  # the other precision's file is untouched


def test_a_sidecar_missing_a_key_is_named_and_a_bad_override_is_the_callers(tmp_path, tiny_models_dir):
    """The error names the sidecar that lacks the key (not always kws/model.json); an override from the caller
    that is no setting is a TypeError naming it, not blamed on a sidecar."""
    for task, key in (("kws", "output"), ("words", "labels")):
        cut = str(tmp_path / f"cut_{task}")
        shutil.copytree(tiny_models_dir, cut)
        sidecar_file = os.path.join(cut, task, "model.json")
        with open(sidecar_file, encoding="utf-8") as f:
            sidecar = json.load(f)
        del sidecar[key]
        with open(sidecar_file, "w", encoding="utf-8") as f:
            json.dump(sidecar, f)
        with pytest.raises(ModelDirError) as e:
            Transcriber.from_dir(cut)
        assert str(e.value) == f"{sidecar_file}: sidecar lacks '{key}'; re-export the models"
    with pytest.raises(TypeError, match="treshold"):
        Transcriber.from_dir(tiny_models_dir, detector_overrides={"treshold": 0.5})


def test_integer_or_multichannel_audio_is_refused_not_misheard():
    """int16 samples or a (samples, 2) array from a stereo file would be transcribed as nothing (too loud, or
    channels interleaved): the API says so in one line; mono in any shape with one long axis is taken as it is."""
    audio = synth(SPEECH)
    tr = fake_transcriber()
    want = tr.transcribe(audio).text
    assert want.startswith("one two")
    assert tr.transcribe(audio[None, :]).text == want and tr.transcribe(audio[:, None].astype(np.float64)).text == want
    with pytest.raises(ValueError, match=r"audio samples are int16; give float32 in -1\.\.1 \(int16: divide by 32768\)"):
        tr.transcribe((audio * 32767).astype(np.int16))
    stereo = np.stack([audio, audio], axis=1)
    for call in (tr.transcribe, tr.feed, tr.classify_clip):
        with pytest.raises(ValueError, match=r"audio has shape \(\d+, 2\); give mono \(samples,\) audio"):
            call(stereo)
