"""Keyword gate and word decoder on synthetic score sequences, and the transcriber end to end with
deterministic stand-in models."""

from __future__ import annotations

import numpy as np

from kws_tf.config import DecoderConfig, DetectorConfig
from kws_tf.decisions import KeywordDetector, UtteranceEnd, WordDecoder, WordEvent
from runtime_fakes import fake_transcriber, synth

FRAME_S = 0.04


def detect(probs, **cfg):
    probs = np.asarray(probs, np.float32)
    det = KeywordDetector(DetectorConfig(**cfg))
    return det.update(np.arange(1, len(probs) + 1) * FRAME_S, probs)


def test_detector_fires_once_per_utterance():
    probs = [0.0] * 10 + [0.9] * 30 + [0.0] * 10
    events = detect(probs, smoothing_frames=3, refractory_s=0.5)
    assert len(events) == 1
    assert abs(events[0].time_s - 12 * FRAME_S) < 1e-9  # third 0.9 frame: smoothed mean reaches 0.6
    assert 0.5 <= events[0].score <= 0.9


def test_detector_refractory_and_rearm():
    burst = [0.95] * 5 + [0.0] * 5
    assert len(detect(burst * 3, smoothing_frames=1, refractory_s=2.0)) == 1  # bursts 0.4 s apart
    assert len(detect(burst * 3, smoothing_frames=1, refractory_s=0.3)) == 3
    # A long plateau never re-fires, however long it lasts.
    assert len(detect([0.95] * 200, smoothing_frames=1, refractory_s=0.3)) == 1


def test_detector_threshold_smoothing_and_patience():
    assert detect([0.4] * 50, threshold=0.5) == []
    spike = [0.0] * 10 + [1.0] + [0.0] * 10
    assert detect(spike, smoothing_frames=3, threshold=0.5) == []
    assert len(detect(spike, smoothing_frames=1, threshold=0.5)) == 1
    assert detect([0.0, 0.9, 0.9, 0.0] * 5, smoothing_frames=1, patience_frames=3) == []
    assert len(detect([0.0] + [0.9] * 3, smoothing_frames=1, patience_frames=3)) == 1


LABELS = ["_silence_", "one", "two", "three"]


def windows(seq, hop_s=0.1, start_s=0.0):
    """``seq``: list of (label index, score) per window -> (start_s, end_s, probs) triples."""
    out = []
    for i, (k, score) in enumerate(seq):
        p = np.full(len(LABELS), (1.0 - score) / (len(LABELS) - 1), np.float32)
        p[k] = score
        s = start_s + i * hop_s
        out.append((s, s + 1.0, p))
    return out


def decode(seq, gated=True, **cfg):
    dec = WordDecoder(DecoderConfig(**{"smoothing_windows": 1, **cfg}), LABELS, gated=gated)
    if gated:
        dec.open(0.0)
    events = []
    for s, e, p in windows(seq):
        events += dec.update(s, e, p)
    return events, dec


def test_decoder_emits_words_in_order_and_ends_after_pause():
    seq = [(1, 0.9)] * 4 + [(0, 0.95)] * 3 + [(2, 0.9)] * 4 + [(0, 0.95)] * 25
    events, dec = decode(seq, pause_s=1.5)
    words = [e.word for e in events if isinstance(e, WordEvent)]
    assert words == ["one", "two"]
    ends = [e for e in events if isinstance(e, UtteranceEnd)]
    assert len(ends) == 1 and ends[0].text == "one two" and not dec.is_open
    one = events[0]
    assert one.start_s < one.end_s and one.score == np.float32(0.9)


def test_decoder_leaves_out_unsure_words_and_never_emits_silence():
    seq = [(1, 0.9)] * 4 + [(2, 0.45)] * 4 + [(3, 0.9)] * 4 + [(0, 0.99)] * 30
    events, _ = decode(seq, threshold=0.6)
    words = [e.word for e in events if isinstance(e, WordEvent)]
    assert words == ["one", "three"]
    assert all(e.word != "_silence_" for e in events if isinstance(e, WordEvent))


def test_decoder_starts_no_word_in_the_padding_after_the_audio_ends():
    """At the end of a stream the windows run on into padded silence: a word whose windows are all
    centred past the audio's end is not in the audio; one that began before it still ends there."""
    seq = [(0, 0.95)] * 10 + [(2, 0.9)] * 6  # window centres 0.5 ... 2.0 s; "two" from 1.5 s on
    dec = WordDecoder(DecoderConfig(smoothing_windows=1), LABELS, gated=False)
    dec.audio_end_s = 1.45
    events = [e for s, e_, p in windows(seq) for e in dec.update(s, e_, p)] + dec.close(2.5)
    assert [e.word for e in events if isinstance(e, WordEvent)] == []
    events, dec = decode(seq, gated=False)
    assert [e.word for e in events + dec.close(2.5) if isinstance(e, WordEvent)] == ["two"]  # without an end: heard
    dec = WordDecoder(DecoderConfig(smoothing_windows=1), LABELS, gated=False)
    dec.audio_end_s = 1.75  # "two" starts before the end: kept
    events = [e for s, e_, p in windows(seq) for e in dec.update(s, e_, p)] + dec.close(2.5)
    assert [e.word for e in events if isinstance(e, WordEvent)] == ["two"]


def test_decoder_merges_a_word_split_by_one_unsure_window():
    seq = [(1, 0.9)] * 3 + [(1, 0.3)] + [(1, 0.9)] * 3 + [(0, 0.99)] * 30
    events, _ = decode(seq, merge_gap_s=0.3)
    assert [e.word for e in events if isinstance(e, WordEvent)] == ["one"]
    events, _ = decode(seq, merge_gap_s=0.0)
    assert [e.word for e in events if isinstance(e, WordEvent)] == ["one", "one"]


def _words(seq, **cfg):
    return [e.word for e in decode(seq, **cfg)[0] if isinstance(e, WordEvent)]


def test_decoder_splits_a_run_too_long_for_one_word():
    """The windows between two of the same word often still vote for it: a run longer than
    max_word_s is the word said twice, also when an unsure window splits it into two runs the gap
    would merge."""
    silence = [(0, 0.99)] * 30
    long_run = [(1, 0.9)] * 20 + silence  # window centres 1.9 s apart from first to last
    assert _words(long_run) == ["one"]
    assert _words(long_run, max_word_s=1.2) == ["one", "one"]
    assert _words(long_run, max_word_s=2.5) == ["one"]
    gapped = [(1, 0.9)] * 10 + [(1, 0.3)] + [(1, 0.9)] * 10 + silence
    assert _words(gapped) == ["one"]
    assert _words(gapped, max_word_s=1.5) == ["one", "one"]
    assert _words(gapped, max_word_s=2.5) == ["one"]
    # Other words around it are unaffected, and a split never merges back.
    seq = [(2, 0.9)] * 5 + [(1, 0.9)] * 20 + [(3, 0.9)] * 5 + silence
    assert _words(seq, max_word_s=1.2) == ["two", "one", "one", "three"]


def test_decoder_min_windows_leaves_out_short_runs():
    silence = [(0, 0.99)] * 30
    seq = [(1, 0.9)] * 6 + [(0, 0.99)] * 5 + [(2, 0.9)] * 2 + [(0, 0.99)] * 5 + [(3, 0.9)] * 3 + silence
    assert _words(seq) == ["one", "two", "three"]
    assert _words(seq, min_windows=3) == ["one", "three"]
    assert _words(seq, min_windows=4) == ["one"]
    # Runs the gap merges count together.
    assert _words([(2, 0.9)] * 2 + [(2, 0.3)] + [(2, 0.9)] * 2 + silence, min_windows=3) == ["two"]
    # The rest of a split shorter than min_windows is dropped: 1.2 s then one window.
    assert _words([(1, 0.9)] * 14 + silence, max_word_s=1.2, min_windows=3) == ["one"]


def test_decoder_max_s_and_ungated_segments():
    seq = [(1, 0.9), (0, 0.99), (2, 0.9), (0, 0.99)] * 30
    events, dec = decode(seq, max_s=3.0, pause_s=5.0)
    ends = [e for e in events if isinstance(e, UtteranceEnd)]
    assert len(ends) == 1 and ends[0].end_s <= 3.0 + 1.0 + 1e-9 and not dec.is_open
    seq = [(1, 0.9)] * 3 + [(0, 0.99)] * 25 + [(2, 0.9)] * 3 + [(0, 0.99)] * 25
    events, dec = decode(seq, gated=False, pause_s=1.0)
    assert [e.text for e in events if isinstance(e, UtteranceEnd)] == ["one", "two"] and dec.is_open


def test_smoothing_over_windows_suppresses_a_single_confident_window():
    seq = [(0, 0.99)] * 3 + [(1, 0.95)] + [(0, 0.99)] * 30
    events, _ = decode(seq, smoothing_windows=3)
    assert [e for e in events if isinstance(e, WordEvent)] == []


SPEECH = [("", 1.0), ("one", 0.5), ("", 1.0), ("stop", 0.5), ("", 0.3), ("one", 0.5), ("", 0.3), ("two", 0.5),
          ("", 0.3), ("three", 0.5), ("", 3.0)]


def test_transcriber_gated_no_gate_and_single_word():
    audio = synth(SPEECH)
    gated = fake_transcriber().transcribe(audio)
    assert gated.text == "one two three"
    assert len(gated.keywords) == 1 and abs(gated.keywords[0].time_s - 3.0) < 0.15
    assert gated.words[0].start_s > gated.keywords[0].time_s - 0.2
    assert abs(gated.duration_s - len(audio) / 16000) < 1e-9
    ungated = fake_transcriber("no_gate").transcribe(audio)
    assert ungated.text == "one stop one two three"
    single = fake_transcriber("single_word").transcribe(synth([("", 0.7), ("two", 0.4), ("", 0.9)]))
    assert [w.word for w in single.words] == ["two"] and single.keywords == []
    short = fake_transcriber("single_word").transcribe(synth([("three", 0.5)]))
    assert [w.word for w in short.words] == ["three"]


def test_no_keyword_means_no_words_when_gated():
    result = fake_transcriber().transcribe(synth([("", 0.5), ("one", 0.5), ("", 0.5), ("two", 0.5), ("", 2.0)]))
    assert result.keywords == [] and result.words == [] and result.text == ""


def test_windows_without_sound_count_as_silence_without_running_the_word_model():
    """Digital silence (a padded file, a muted input) is nothing the word model was trained on; the
    runtime calls such windows silence instead of asking it (a trained model once heard "two" there)."""
    from kws_tf.config import FeatureConfig
    from kws_tf.runtime import Transcriber
    from runtime_fakes import KERNEL, KWS_FRAMES, LABELS as FAKE_LABELS, STRIDE, WORD_FRAMES, fake_kws

    cfg, calls = FeatureConfig(), []

    def confused(features):  # hears "one" in anything
        calls.append(float(features.max()))
        probs = np.full(len(FAKE_LABELS), 0.01, np.float32)
        probs[FAKE_LABELS.index("one")] = 0.96
        return probs

    tr = Transcriber(cfg, fake_kws(cfg), KWS_FRAMES, KERNEL, STRIDE, confused, WORD_FRAMES, FAKE_LABELS, mode="no_gate")
    assert tr.transcribe(np.zeros(4 * 16000, np.float32)).words == [] and calls == []
    quiet = (np.random.default_rng(0).standard_normal(4 * 16000) * 10 ** (-60 / 20)).astype(np.float32)  # -60 dBFS: sound
    words = tr.transcribe(quiet).words
    assert words and {w.word for w in words} == {"one"} and min(calls) > DecoderConfig().min_log_mel
