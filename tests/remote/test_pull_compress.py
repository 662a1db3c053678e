"""A compressed pull (gzip on the instance, inflated here) brings the same bytes as a plain one,
falls back to plain tar on an instance without gzip (a compressed stream cut short: test_pull.py).
Real sshd of a vastsim instance."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import remote.pull
from remote.pull import pull
from remote.ssh import Connection, Target
from tests.remote.test_pull import TREE, local_files, local_sha, remote_sha

pytestmark = pytest.mark.sshd

TEXT = "cd /work && seq 1 200000 | sed 's/$/ a line of a log that compresses/' > log.txt"


@pytest.mark.parametrize("via", ["ssh", "paramiko"])
def test_a_compressed_pull_brings_the_same_bytes(target: Target, tmp_path: Path, via: str):
    local = tmp_path / "dest"
    log = io.StringIO()
    with Connection(target) as conn:
        conn.run(TREE)
        conn.run(TEXT)
        got = pull(conn, local_dir=local, via=via, log=log, compress=True)
        assert got.compressed and got.via == via, got
        assert "gzip" in got.describe()
        for rel in ("sub/b.bin", "log.txt", "a.txt", "-odd name"):
            assert local_sha(local / rel) == remote_sha(conn, rel), rel
        assert local_files(local)["link"] == "link:sub/b.bin"
        conn.run("printf 'alpha, changed\\n' > /work/a.txt")
        again = pull(conn, local_dir=local, via=via, log=log, compress=True)
    assert again.fetched == ["a.txt"] and again.compressed
    assert (local / "a.txt").read_text() == "alpha, changed\n"
    assert not got.refused and not got.vanished


def test_a_plain_pull_is_not_compressed(target: Target, tmp_path: Path) -> None:
    with Connection(target) as conn:
        conn.run(TEXT)
        got = pull(conn, local_dir=tmp_path / "dest", log=io.StringIO(), compress=False)
        assert not got.compressed and "gzip" not in got.describe()
        assert local_sha(tmp_path / "dest" / "log.txt") == remote_sha(conn, "log.txt")


def test_an_instance_without_gzip_sends_plain_tar(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = remote.pull.tar_command
    monkeypatch.setattr(remote.pull, "tar_command",
                        lambda d: real(d).replace("command -v gzip", "command -v no-such-gzip"))
    with Connection(target) as conn:
        conn.run(TEXT)
        got = pull(conn, local_dir=tmp_path / "dest", log=io.StringIO(), compress=True)
        assert not got.compressed and got.fetched == ["log.txt"], got
        assert local_sha(tmp_path / "dest" / "log.txt") == remote_sha(conn, "log.txt")
