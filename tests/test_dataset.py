"""Speech Commands index: list files, hash split, missing files, vocabulary, unreadable clips."""

from __future__ import annotations

import os

import numpy as np
import pytest

from kws_tf.dataset import (DataError, check_vocabulary, fit_length, fold_of, hash_split, index_speech_commands, load_clips, parse_fold,
                            speaker_of, speech_extent)
from tests.conftest import write_tree

SUBSET = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "speech_commands_subset")


def test_lists_assign_splits_and_count_missing(tmp_path):
    root = write_tree(str(tmp_path), speakers=4, per_speaker=1)
    index = index_speech_commands(root)
    assert index.split_source == "lists"
    assert index.missing_listed == 1  # yes/deadbeef_nohash_9.wav is listed but absent
    by_split = {s: {c.speaker for c in index.clips if c.split == s} for s in ("train", "validation", "test")}
    assert len(by_split["validation"]) == 1 and len(by_split["test"]) == 1 and len(by_split["train"]) == 2
    assert index.counts["stop"] == {"train": 2, "validation": 1, "test": 1}
    assert len(index.noise_files) == 1


def test_hash_split_without_lists_keeps_speakers_on_one_side(tmp_path):
    root = write_tree(str(tmp_path), speakers=30, per_speaker=2, lists=False)
    index = index_speech_commands(root)
    assert index.split_source == "hash"
    sides: dict[str, set] = {}
    for c in index.clips:
        sides.setdefault(c.speaker, set()).add(c.split)
        assert c.split == hash_split(os.path.relpath(c.path, root))
    assert all(len(s) == 1 for s in sides.values())
    assert {c.split for c in index.clips} == {"train", "validation", "test"}


@pytest.mark.parametrize("lists", [True, False])
def test_folds_deal_the_non_test_speakers_into_disjoint_validation_folds(tmp_path, lists):
    """--fold K/N: fold K of the pooled training and validation speakers is the validation split, the
    other folds train; over K = 1..N every such speaker validates exactly once; the test split is untouched."""
    root = write_tree(str(tmp_path), speakers=30, per_speaker=1, lists=lists)
    plain = index_speech_commands(root)
    test = {c.path for c in plain.select("test")}
    pooled = {c.speaker for c in plain.clips if c.split != "test"}
    validated: list[str] = []
    for k in (1, 2, 3):
        index = index_speech_commands(root, fold=(k, 3))
        assert index.fold == (k, 3) and index.summary()["fold"] == f"{k}/3"
        assert {c.path for c in index.select("test")} == test
        val = {c.speaker for c in index.select("validation")}
        assert val and not val & {c.speaker for c in index.select("train")}
        assert all(fold_of(spk, 3) == k for spk in val)
        validated += sorted(val)
    assert sorted(validated) == sorted(pooled)  # each pooled speaker in exactly one fold
    assert plain.fold is None and plain.summary()["fold"] is None


def test_parse_fold_reads_k_of_n_and_says_how_to_write_it():
    assert parse_fold("2/5") == (2, 5)
    for bad, message in (("2", "write a fold as K/N"), ("a/b", "write a fold as K/N"), ("0/5", "1 <= K <= N"),
                         ("6/5", "1 <= K <= N"), ("1/1", "N >= 2")):
        with pytest.raises(ValueError, match=message):
            parse_fold(bad)


def test_hash_split_matches_the_dataset_readme():
    # Values computed with the README's which_set(filename, 10, 10).
    assert speaker_of("bed/00176480_nohash_0.wav") == "00176480"
    assert hash_split("bed/00176480_nohash_0.wav") == hash_split("go/00176480_nohash_3.wav")
    # Computed separately with the README's which_set (MAX_NUM_WAVS_PER_CLASS = 2**27 - 1), its
    # "training"/"validation"/"testing" written here as "train"/"validation"/"test".
    assert hash_split("bed/00176480_nohash_0.wav") == "train"  # 69.80 %
    assert hash_split("x/00000000_nohash_0.wav") == "validation"
    assert hash_split("x/00000002_nohash_0.wav") == "test"
    assert hash_split("x/00000018_nohash_0.wav") == "test"  # 15.10 %
    assert hash_split("x/00000001_nohash_0.wav") == "train"  # 50.97 %
    # which_set(filename, 50, 30) and which_set(filename, 30, 50): the percentages are honoured
    assert hash_split("x/00000003_nohash_0.wav", 50, 30) == "validation"  # 40.43 %
    assert hash_split("x/00000003_nohash_0.wav", 30, 50) == "test"
    assert hash_split("x/00000001_nohash_0.wav", 50, 30) == "test"
    assert hash_split("x/00000018_nohash_0.wav", 5, 5) == "train"


def test_bad_folders_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        index_speech_commands(str(tmp_path / "nope"))
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    with pytest.raises(DataError, match="no WORD/\\*.wav clips"):
        index_speech_commands(str(tmp_path / "empty"))
    index = index_speech_commands(write_tree(str(tmp_path / "tree"), speakers=3, per_speaker=1))
    with pytest.raises(DataError, match="no train clips for zebra; remove it from --words or add its WORD/\\*.wav folder, or "
                                        "synthesize zebra: python -m kws_tf.train.synth --words zebra --out DIR, then add --synthetic-dir DIR$"):
        check_vocabulary(index, ["yes", "zebra"])
    (tmp_path / "a_file").write_text("")
    with pytest.raises(DataError, match="a_file: is a file; pass --data-dir with a Speech Commands folder"):
        index_speech_commands(str(tmp_path / "a_file"))
    with pytest.raises(DataError, match="no validation_list.txt or testing_list.txt there"):  # never a silent hash split
        index_speech_commands(str(tmp_path / "tree"), lists_dir=str(tmp_path / "empty"))


def test_words_the_data_lacks_get_close_matches_and_synthesis_only_for_renderable_words(tmp_path):
    index = index_speech_commands(write_tree(str(tmp_path / "tree"), words=("yes", "go", "lights"), speakers=3, per_speaker=1))
    with pytest.raises(DataError) as caught:
        check_vocabulary(index, ["yes", "ligths", "Go", "turn on"])
    message = str(caught.value)
    assert message.startswith(f"{index.root}: no train clips for ligths, Go, turn on; did you mean 'lights' for 'ligths', 'go' for 'Go'? "
                              "Else remove them from --words")
    # only the lowercase word is offered to the synthesizer: not 'Go', not the phrase
    assert message.endswith(", or synthesize ligths: python -m kws_tf.train.synth --words ligths --out DIR, then add --synthetic-dir DIR")
    assert "\n" not in message
    # with --synthetic-dir, both folders are named and the command writes into the synthetic one
    synthetic = index_speech_commands(write_tree(str(tmp_path / "my synth"), words=("marvin",), speakers=3, per_speaker=1, lists=False))
    with pytest.raises(DataError) as caught:
        check_vocabulary(index, ["yes", "marvn", "Go"], synthetic=synthetic)
    message = str(caught.value)
    assert message.startswith(f"{index.root} and {synthetic.root}: no train clips for marvn, Go; did you mean 'marvin' for 'marvn', 'go' for 'Go'?")
    assert message.endswith(f"or synthesize marvn into the synthetic folder: python -m kws_tf.train.synth --words marvn --out '{synthetic.root}'")
    check_vocabulary(index, ["yes", "marvin"], synthetic=synthetic)  # a word only the synthetic folder has is there
    # an uppercase word alone, with its lowercase folder there: the suggestion, and no synthesis
    with pytest.raises(DataError, match="did you mean 'go' for 'Go'\\? Else remove it from --words or add its WORD/\\*.wav folder$"):
        check_vocabulary(index, ["Go"])


def test_unreadable_clips_are_skipped_and_reported(tmp_path):
    root = write_tree(str(tmp_path), speakers=3, per_speaker=1, lists=False)
    bad = os.path.join(root, "yes", "0badc0de_nohash_0.wav")
    with open(bad, "wb") as f:
        f.write(b"RIFF\x00\x00garbage")
    with open(os.path.join(root, "yes", "._0badc0de_nohash_0.wav"), "wb") as f:  # a macOS resource fork: not a clip
        f.write(b"\x00\x05\x16\x07")
    index = index_speech_commands(root)
    assert not any(os.path.basename(c.path).startswith(".") for c in index.clips)
    loaded = load_clips(index.clips, 16000, progress=False)
    assert loaded.audio.shape == (len(index.clips) - 1, 16000) and loaded.audio.dtype == np.int16
    assert len(loaded.failed) == 1 and bad in loaded.failed[0]
    assert [c.path for c in loaded.clips] == [c.path for c in index.clips if c.path != bad]
    for clip, row in zip(loaded.clips, loaded.audio):  # each row is its own clip's audio, after the skipped one too
        np.testing.assert_array_equal(row, load_clips([clip], 16000, progress=False).audio[0])


def test_fit_length_and_speech_extent():
    assert len(fit_length(np.ones(12000), 16000)) == 16000
    assert len(fit_length(np.ones(20000), 16000)) == 16000
    x = np.zeros(16000, np.float32)
    x[4000:9000] = 0.5 * np.sin(np.arange(5000))
    start, end = speech_extent(x)
    assert abs(start - 0.25) <= 0.01 and abs(end - 0.5625) <= 0.01


@pytest.mark.skipif(not os.path.isdir(SUBSET), reason="shared Speech Commands subset not present")
def test_shared_subset_and_official_lists():
    index = index_speech_commands(SUBSET)
    assert len(index.clips) == 3212 and index.missing_listed == 0
    speakers = {s: {c.speaker for c in index.clips if c.split == s} for s in ("train", "validation", "test")}
    assert not (speakers["train"] & speakers["test"]) and not (speakers["train"] & speakers["validation"])
    official = index_speech_commands(SUBSET, lists_dir=os.path.join(SUBSET, "official_v0.01_lists"))
    assert official.missing_listed > 10000  # the official lists name thousands of absent files
    assert len(official.clips) == 3212


def test_loading_progress_is_shown_only_when_asked(tmp_path, capsys):
    """Training asks for the loading bar only on a terminal without --quiet (in a log file it is a line of
    carriage returns)."""
    root = write_tree(str(tmp_path), speakers=3, per_speaker=1, lists=False)
    many = index_speech_commands(root).clips[:1] * 201  # bars start above 200 clips
    assert load_clips(many, 16000, progress=False).audio.shape == (201, 16000)
    assert capsys.readouterr().err == ""
    load_clips(many, 16000, progress=True, desc="train clips")
    assert "train clips" in capsys.readouterr().err
