"""deploys/tail.py: following a file across appends, partial lines, truncation and rotation."""

import os

from deploys.tail import FileFollower


def test_backlog_then_appended_lines_only_complete_ones(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("old 1\nold 2\n")
    follower = FileFollower(str(log), backlog_lines=1)
    assert follower.read_lines() == ["old 2"]
    with log.open("a") as f:
        f.write("new 1\nhalf")
    assert follower.read_lines() == ["new 1"]
    with log.open("a") as f:
        f.write(" done\n")
    assert follower.read_lines() == ["half done"]
    assert follower.read_lines() == []


def test_truncation_starts_again_from_the_top(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("a\nb\nc\n")
    follower = FileFollower(str(log), backlog_lines=0)
    log.write_text("x\n")  # truncated in place (copytruncate)
    assert follower.read_lines() == ["x"]


def test_rotation_drains_the_old_file_then_follows_the_new(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    follower = FileFollower(str(log), backlog_lines=0)
    with log.open("a") as f:
        f.write("before rotation\n")
    os.rename(log, tmp_path / "app.log.1")
    with (tmp_path / "app.log.1").open("a") as f:
        f.write("late write to the old file\n")
    log.write_text("first of the new file\n")
    assert follower.read_lines() == ["before rotation", "late write to the old file", "first of the new file"]
    with log.open("a") as f:
        f.write("more\n")
    assert follower.read_lines() == ["more"]


def test_a_missing_file_is_picked_up_when_it_appears(tmp_path):
    log = tmp_path / "later.log"
    follower = FileFollower(str(log))
    assert follower.read_lines() == []
    log.write_text("hello\n")
    assert follower.read_lines() == ["hello"]
