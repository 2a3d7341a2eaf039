"""Files written whole or not at all (kws_tf.atomic_write): the models' exports, sidecars, transcripts,
traces and grids are written through it."""

from __future__ import annotations

import os

import pytest

from kws_tf.atomic_write import atomic_path


def test_a_finished_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old\n")
    with atomic_path(str(target), suffix=".json") as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".json") and tmp != str(target)
        with open(tmp, "w") as f:
            f.write("new\n")
        assert target.read_text() == "old\n"  # not before the block ends
    assert target.read_text() == "new\n" and os.listdir(tmp_path) == ["out.json"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_keeps_the_old_file_and_removes_its_part(tmp_path, error):
    target = tmp_path / "out.json"
    target.write_text("old\n")
    with pytest.raises(type(error)):
        with atomic_path(str(target)) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise error
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["out.json"]


def test_a_write_that_made_no_file_fails_without_touching_the_target(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(FileNotFoundError):
        with atomic_path(str(target)):
            pass  # nothing written: the rename has nothing to move
    assert os.listdir(tmp_path) == []
