"""A sync and a pull end with the same line, in the same words (remote/transfer.py)."""

from __future__ import annotations

from pathlib import Path

from remote.transfer import PullResult, SyncResult


def test_sync_and_pull_describe_what_they_moved_in_the_same_words() -> None:
    synced = SyncResult("tar-paramiko", 3, 2_500_000, 1, 7, 1.25)
    pulled = PullResult(Path("/tmp/x"), fetched=["a", "b", "c"], nbytes=2_500_000,
                        unchanged=7, via="ssh", streams=2, seconds=1.25,
                        refused=[("../x", "escapes")])
    assert synced.describe() == ("3 files sent (2.5 MB), 1 deleted, 7 unchanged, "
                                 "1.2 s (tar-paramiko)")
    assert pulled.describe() == ("3 files fetched (2.5 MB), 1 skipped, 7 unchanged, "
                                 "1.2 s (ssh, 2 streams)")


def test_nothing_to_move_is_up_to_date_either_way() -> None:
    assert SyncResult("tar-paramiko", 0, 0, 0, 12, 0.31).describe() == \
        "up to date, 12 files (0.3 s to check)"
    assert PullResult(Path("/tmp/x"), unchanged=12, seconds=0.31).describe() == \
        "up to date, 12 files (0.3 s to check)"


def test_a_pull_that_only_skipped_says_so() -> None:
    skipped = PullResult(Path("/tmp/x"), unchanged=2, seconds=0.5,  # no stream was needed
                         refused=[("../x", "escapes")])
    assert skipped.describe() == "0 files fetched (0.0 MB), 1 skipped, 2 unchanged, 0.5 s"
