"""remote.pull: path checks (pure), and pulls from a vastsim instance's real sshd."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest

import remote.openssh
import remote.pull
import remote.tarstream
from remote.errors import PullError, UnsafePathError
from remote.listing import Entry
from remote.pull import pull
from remote.pullpaths import check_link, check_sizes, safe_relpath
from remote.pullrecord import RECORD_NAME
from remote.ssh import Connection, Target
from remote.tarstream import TarReader
from remote.unpack import check_member

TREE = r"""
set -e
cd /work
printf 'alpha\n' > a.txt
mkdir -p sub/deep empty
head -c 300000 /dev/urandom > sub/b.bin
printf 'deep\n' > sub/deep/c
printf 'dash\n' > './-odd name'
ln -s sub/b.bin link
"""


def local_files(root: Path) -> dict[str, str]:
    """rel path -> "file:<size>", "link:<target>" or "dir", for everything under root but the
    pull's own record."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if rel == RECORD_NAME:
                continue
            if path.is_symlink():
                found[rel] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = f"file:{path.stat().st_size}"
    return found


def remote_sha(conn: Connection, rel: str) -> str:
    return conn.run(f"sha256sum '/work/{rel}'").stdout.split()[0]


def local_sha(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- pure checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("a.txt", "a.txt"), ("./sub/b", "sub/b"), ("sub//c", "sub/c"), ("-odd name", "-odd name"),
])
def test_safe_relpath_normalises(name: str, expected: str) -> None:
    assert safe_relpath(name) == expected


@pytest.mark.parametrize(("name", "reason"), [
    ("/etc/passwd", "absolute"), ("../x", ".."), ("a/../../x", ".."), ("a/..", ".."),
    ("", "empty"), (".", "itself"), ("./", "itself"),
])
def test_safe_relpath_refuses(name: str, reason: str) -> None:
    with pytest.raises(UnsafePathError) as err:
        safe_relpath(name)
    assert reason in err.value.reason


@pytest.mark.parametrize(("rel", "target", "safe"), [
    ("link", "sub/b.bin", True), ("sub/up", "../a.txt", True), ("sub/self", ".", True),
    ("evil", "/etc", False), ("up", "../../..", False), ("sub/up2", "../..", False),
    ("top", ".", False), ("x", "", False), ("sub/sneaky", "deep/../../../etc", False),
])
def test_check_link(rel: str, target: str, safe: bool) -> None:
    if safe:
        check_link(rel, target)
    else:
        with pytest.raises(UnsafePathError):
            check_link(rel, target)


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


WANTED = {"ok.txt": Entry("ok.txt", "f", 0, 0.0, 0o644)}


@pytest.mark.parametrize(("info", "reason"), [
    (member("/etc/passwd"), "absolute"),
    (member("../escape"), ".."),
    (member("./a/../../escape"), ".."),
    (member("ok.txt", tarfile.SYMTYPE, "/etc/passwd"), "symlink"),
    (member("ok.txt", tarfile.LNKTYPE, "/etc/passwd"), "hard link"),
    (member("ok.txt", tarfile.CHRTYPE), "device"),
    (member("ok.txt", tarfile.DIRTYPE), "directory"),
    (member("other.txt"), "not asked for"),
])
def test_check_member_refuses(info: tarfile.TarInfo, reason: str) -> None:
    with pytest.raises(UnsafePathError) as err:
        check_member(info, WANTED)
    assert reason in err.value.reason


def test_check_member_takes_a_wanted_regular_file() -> None:
    assert check_member(member("./ok.txt"), WANTED) == "ok.txt"


def test_check_sizes_catches_a_short_file(tmp_path: Path) -> None:
    (tmp_path / "full").write_bytes(b"x" * 100)
    (tmp_path / "short").write_bytes(b"x" * 60)
    problems = check_sizes(tmp_path, {"full": 100, "short": 100, "gone": 5})
    assert problems == ["short: 60 bytes, expected 100", "gone: No such file or directory"]


def make_tar(fmt: int, files: dict[str, bytes], link_target: str = "t") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("a-link")
        link.type, link.linkname = tarfile.SYMTYPE, link_target
        tar.addfile(link)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "long"), [
    (tarfile.GNU_FORMAT, True), (tarfile.PAX_FORMAT, True), (tarfile.USTAR_FORMAT, False),
])
def test_tar_reader_reads_what_tarfile_writes(fmt: int, long: bool) -> None:
    """GNU long names and pax records (long or non-ASCII names) as well as plain ustar."""
    name, target = ("d/" + "n" * 120, "x" * 150) if long else ("d/short", "x" * 90)
    files = {"a": b"", "b": b"x" * 513, name: b"y" * 3_000_000}
    if long:
        files["\u00e9t\u00e9"] = b"z"
    reader = TarReader(io.BytesIO(make_tar(fmt, files, target)))
    seen: dict[str, bytes | str] = {}
    for info in reader:
        if info.isreg() and info.name != "b":  # "b" is left unread: the reader skips it
            out = bytearray()
            reader.copy_to(out.extend, lambda _n: None)
            seen[info.name] = bytes(out)
        else:
            seen[info.name] = info.linkname
        assert info.mtime == 1_700_000_000 or info.issym()
    assert seen == {**files, "b": "", "a-link": target}


def test_tar_reader_refuses_a_stream_cut_at_a_member_boundary() -> None:
    data = make_tar(tarfile.GNU_FORMAT, {"a": b"1" * 600})
    cut = 512 + 1024  # one header, the data padded to two blocks: no end-of-archive blocks
    with pytest.raises(tarfile.ReadError, match="cut short"):
        list(TarReader(io.BytesIO(data[:cut])))


def test_tar_reader_big_member_through_the_writer_thread() -> None:
    data = os.urandom(1 << 16) * 150  # 9.4 MiB: over THREADED_MIN
    assert len(data) >= remote.tarstream.THREADED_MIN
    archive = make_tar(tarfile.GNU_FORMAT, {"big": data})
    reader = TarReader(io.BytesIO(archive))
    out = bytearray()
    assert next(iter(reader)).name == "big"
    assert reader.copy_to(out.extend, lambda _n: None) == len(data) and bytes(out) == data

    reader = TarReader(io.BytesIO(archive[: 512 + len(data) // 2]))  # cut mid-file
    next(iter(reader))
    with pytest.raises(tarfile.ReadError, match="bytes short"):
        reader.copy_to(bytearray().extend, lambda _n: None)

    def disk_full(_chunk: memoryview) -> None:
        raise OSError(28, "No space left on device")

    reader = TarReader(io.BytesIO(archive))
    next(iter(reader))
    with pytest.raises(OSError, match="No space"):
        reader.copy_to(disk_full, lambda _n: None)


# --- against sshd ---------------------------------------------------------------------------


@pytest.mark.sshd
@pytest.mark.parametrize("via", ["ssh", "paramiko"])
def test_pull_is_incremental_and_never_deletes(target: Target, tmp_path: Path, via: str):
    local = tmp_path / "work_remote" / "job"
    log = io.StringIO()
    with Connection(target) as conn:
        conn.run(TREE)
        first = pull(conn, local_dir=local, via=via, log=log)
        assert first.via == via
        assert sorted(first.fetched) == ["-odd name", "a.txt", "sub/b.bin", "sub/deep/c"]
        assert first.links == ["link"] and not first.refused
        assert local_files(local) == {
            "a.txt": "file:6", "sub": "dir", "empty": "dir", "sub/deep": "dir",
            "sub/b.bin": "file:300000", "sub/deep/c": "file:5", "-odd name": "file:5",
            "link": "link:sub/b.bin",
        }
        assert local_sha(local / "sub/b.bin") == remote_sha(conn, "sub/b.bin")
        assert "pull: 4 files" in log.getvalue()

        again = pull(conn, local_dir=local, via=via, log=log)
        assert (again.fetched, again.nbytes, again.links, again.via) == ([], 0, [], "")
        assert again.unchanged == 5

        (local / "mine.txt").write_text("local only")
        conn.run("printf 'alpha, changed\\n' > /work/a.txt; rm /work/sub/deep/c; "
                 "touch -d '2001-01-01' /work/sub/b.bin")  # same size, other mtime
        third = pull(conn, local_dir=local, via=via, log=log)
        assert sorted(third.fetched) == ["a.txt", "sub/b.bin"]
        assert (local / "a.txt").read_text() == "alpha, changed\n"
        assert (local / "mine.txt").read_text() == "local only"  # never deleted
        assert (local / "sub/deep/c").read_text() == "deep\n"  # gone remotely, kept here
        assert int((local / "sub/b.bin").stat().st_mtime) == 978307200


@pytest.mark.sshd
def test_hostile_links_are_refused_and_nothing_lands_outside(
    target: Target, tmp_path: Path
) -> None:
    local = tmp_path / "dest"
    outside = tmp_path / "outside"
    outside.mkdir()
    local.mkdir()
    (local / "out").symlink_to(outside)  # a local link a remote dir could be written through
    log = io.StringIO()
    with Connection(target) as conn:
        conn.run("cd /work && ln -s /etc evil && ln -s ../../.. up && mkdir -p d/e out && "
                 "ln -s ../.. d/up2 && ln -s ../ok d/fine && echo ok > ok && echo x > out/f && "
                 "ln -s .. d/e/y && ln -s d/e/y/../.. chain")  # each alone stays inside
        result = pull(conn, local_dir=local, log=log)
    refused = dict(result.refused)
    assert set(refused) == {"evil", "up", "d/up2", "out", "out/f", "chain"}
    assert "absolute" in refused["evil"] and "outside" in refused["up"]
    assert "through other symlinks" in refused["chain"] and not (local / "chain").is_symlink()
    assert "local symlink" in refused["out/f"]
    assert "refusing 'evil'" in log.getvalue()
    assert result.fetched == ["ok"] and sorted(result.links) == ["d/e/y", "d/fine"]
    assert list(outside.iterdir()) == []
    assert not (local / "evil").exists() and not (local / "up").exists()
    assert {p.name for p in tmp_path.iterdir()} == {
        "dest", "keys", "known_hosts", "outside", "vastsim0"}


HOSTILE_TAR = r"""python3 - <<'EOF'
import io, sys, tarfile
out = tarfile.open(fileobj=sys.stdout.buffer, mode="w|")
def add(name, data=b"pwned\n", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    out.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
add("../escape.txt")
add("/tmp/vast-gpu-test-abs.txt")
add("ok2.txt", kind=tarfile.SYMTYPE, link="/etc/passwd")
add("ok.txt", b"fine\n")
add("ok.txt", b"again\n")
out.close()
EOF
"""


@pytest.mark.sshd
def test_a_hostile_tar_stream_is_checked_member_by_member(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote.pull, "tar_command", lambda _dir: HOSTILE_TAR)
    local = tmp_path / "nest" / "dest"
    log = io.StringIO()
    with Connection(target) as conn:
        conn.run("echo fine > /work/ok.txt && echo two > /work/ok2.txt")
        result = pull(conn, local_dir=local, via="paramiko", log=log)
    assert result.fetched == ["ok.txt"] and (local / "ok.txt").read_text() == "fine\n"
    reasons = dict(result.refused)
    assert "`..`" in reasons["../escape.txt"]
    assert "absolute" in reasons["/tmp/vast-gpu-test-abs.txt"]
    assert "symlink" in reasons["ok2.txt"] and "twice" in reasons["ok.txt"]
    assert result.vanished == []  # ok2.txt was refused: named once, with the reason
    assert not (tmp_path / "nest" / "escape.txt").exists()
    assert not Path("/tmp/vast-gpu-test-abs.txt").exists()
    assert local_files(local) == {"ok.txt": "file:5"}


@pytest.mark.sshd
@pytest.mark.parametrize("compress", [False, True])
def test_a_stream_cut_short_is_an_error_and_keeps_nothing_half_written(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compress: bool
) -> None:
    real = remote.pull.tar_command
    monkeypatch.setattr(remote.pull, "tar_command", lambda d: real(d) + " | head -c 150000")
    local = tmp_path / "dest"
    with Connection(target) as conn:
        conn.run("head -c 400000 /dev/urandom > /work/big.bin")
        with pytest.raises(PullError) as err:
            pull(conn, local_dir=local, log=io.StringIO(), compress=compress)
    assert "broke off" in str(err.value) and "rerun" in str(err.value)
    assert ("gzip stream was cut short" in str(err.value)) == compress
    assert list(local.iterdir()) == []  # no partial file left under its name or a temp name


@pytest.mark.sshd
def test_falls_back_to_paramiko_when_the_ssh_client_fails(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "fake-ssh"
    fake.write_text("#!/bin/sh\necho 'ssh: connect to host: Connection refused' >&2\nexit 255\n")
    fake.chmod(0o755)
    monkeypatch.setattr(remote.openssh, "SSH_PROGRAM", str(fake))
    log = io.StringIO()
    with Connection(target) as conn:
        conn.run("echo hi > /work/hi.txt")
        result = pull(conn, local_dir=tmp_path / "dest", log=log)
        with pytest.raises(PullError) as err:
            pull(conn, local_dir=tmp_path / "dest2", via="ssh", log=log)
    assert result.via == "paramiko" and result.fetched == ["hi.txt"]
    assert "Connection refused" in log.getvalue() and "using paramiko" in log.getvalue()
    assert "Connection refused" in str(err.value)


@pytest.mark.sshd
def test_missing_remote_dir_is_a_clear_error(target: Target, tmp_path: Path) -> None:
    with Connection(target) as conn, pytest.raises(PullError) as err:
        pull(conn, "/nowhere", local_dir=tmp_path / "dest")
    assert "/nowhere" in str(err.value) and "no such directory" in str(err.value)


# --- one odd entry never costs the others -----------------------------------------------------

DEEP_TREE = r"""
set -e
cd /work
echo ok > ok.txt
echo long > "$(printf 'x%.0s' $(seq 250))"
for i in $(seq 250); do mkdir level-of-a-deep-tree && cd level-of-a-deep-tree; done
echo deep > bottom.txt
"""


@pytest.mark.sshd
def test_a_tree_too_deep_for_this_side_is_skipped_and_the_rest_arrives(
    target: Target, tmp_path: Path
) -> None:
    log = io.StringIO()
    with Connection(target) as conn:
        conn.run(DEEP_TREE)
        result = pull(conn, local_dir=tmp_path / "dest", log=log)
    assert sorted(result.fetched) == ["ok.txt", "x" * 250]  # a long name that fits arrives
    assert (tmp_path / "dest" / ("x" * 250)).read_text() == "long\n"
    reasons = dict(result.refused)
    deep = [p for p in reasons if p.endswith("bottom.txt")]
    assert deep and "File name too long" in reasons[deep[0]]
    skipped = log.getvalue().split("pull: skipped ")[-1]
    assert skipped.startswith(f"{len(result.refused)} path(s):") and "bottom.txt" in skipped


LONG_NAME = "n" * 300
HOSTILE_LISTING = r"""python3 - <<'EOF'
import sys
w = sys.stdout.buffer.write
for record in [b"f 3 1700000000.0 644 ok.txt", b"f 3 1700000000.0 644 " + b"n" * 300,
               b"garbage", b"f notanumber 1.0 644 bad-size", b"f 1 nan 644 bad-mtime",
               b"f 1 1e300 644 huge-mtime", b"f 1 1.0 9z9 bad-mode"]:
    w(record + b"\0\0")
EOF
"""


@pytest.mark.sshd
def test_a_garbage_listing_and_a_name_over_the_limit_are_skipped_not_fatal(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote.pull, "list_command", lambda _dir: HOSTILE_LISTING)
    log = io.StringIO()
    with Connection(target) as conn:
        conn.run("printf 'ok\\n' > /work/ok.txt")
        result = pull(conn, local_dir=tmp_path / "dest", log=log)
    assert result.fetched == ["ok.txt"] and (tmp_path / "dest" / "ok.txt").read_text() == "ok\n"
    reasons = dict(result.refused)
    assert "File name too long" in reasons[LONG_NAME]
    for bad in ("garbage", "f notanumber 1.0 644 bad-size", "f 1 nan 644 bad-mtime",
                "f 1 1e300 644 huge-mtime", "f 1 1.0 9z9 bad-mode"):
        assert "unreadable listing record" in reasons[repr(bad.encode())], reasons
    assert log.getvalue().count("pull: skipped 6 path(s):") == 1


@pytest.mark.sshd
@pytest.mark.parametrize("via", ["ssh", "paramiko"])
def test_both_names_of_a_hard_link_arrive(target: Target, tmp_path: Path, via: str) -> None:
    local = tmp_path / "dest"
    log = io.StringIO()
    with Connection(target) as conn:
        conn.run("cd /work && mkdir d && echo shared > d/a && ln d/a b && ln d/a d/c")
        result = pull(conn, local_dir=local, via=via, log=log)
        assert sorted(result.fetched) == ["b", "d/a", "d/c"], log.getvalue()
        assert not result.vanished and not result.refused
        assert all((local / n).read_text() == "shared\n" for n in ("b", "d/a", "d/c"))
        conn.run("echo new > /work/e && ln /work/e /work/f")  # only the new pair is sent
        again = pull(conn, local_dir=local, via=via, log=log)
    assert sorted(again.fetched) == ["e", "f"] and (local / "f").read_text() == "new\n"


@pytest.mark.sshd
def test_a_local_file_the_pull_did_not_write_is_kept_as_a_copy_never_overwritten(
    target: Target, tmp_path: Path
) -> None:
    local = tmp_path / "dest"
    local.mkdir()
    (local / "mine.txt").write_text("written here first\n")  # before any pull
    log = io.StringIO()
    with Connection(target) as conn:
        conn.run("cd /work && echo remote > mine.txt && echo one > a.txt && echo one > b.txt")
        first = pull(conn, local_dir=local, log=log)
        assert sorted(first.fetched) == ["a.txt", "b.txt", "mine.txt"]
        assert first.kept == [("mine.txt", "mine.txt.local")]
        assert (local / "mine.txt.local").read_text() == "written here first\n"
        assert (local / "mine.txt").read_text() == "remote\n"
        assert "kept your mine.txt as mine.txt.local" in log.getvalue()

        (local / "a.txt").write_text("edited here\n")  # a pulled file, edited locally
        conn.run("cd /work && echo two > a.txt && echo two > b.txt && touch -d 2001-01-01 "
                 "a.txt b.txt && echo again > mine.txt")
        second = pull(conn, local_dir=local, log=log)
    assert sorted(second.fetched) == ["a.txt", "b.txt", "mine.txt"]
    assert second.kept == [("a.txt", "a.txt.local")]  # b.txt and mine.txt were the pull's own
    assert (local / "a.txt.local").read_text() == "edited here\n"
    assert (local / "a.txt").read_text() == (local / "b.txt").read_text() == "two\n"
    assert (local / "mine.txt.local").read_text() == "written here first\n"


@pytest.mark.sshd
@pytest.mark.parametrize("via", ["ssh", "paramiko"])
def test_a_stream_that_stalls_is_an_error_and_leaves_no_remote_process(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    """A remote tar that stops mid-stream must not hold the pull (and the instance billing)
    forever: after the stall timeout it is a PullError, the remote group is killed, and a
    rerun fetches everything."""
    real = remote.pull.tar_command
    monkeypatch.setattr(remote.pull, "tar_command",
                        lambda d: real(d) + " | { head -c 150000; sleep 1000; }")
    local = tmp_path / "dest"
    with Connection(target) as conn:
        conn.run("head -c 400000 /dev/urandom > /work/big.bin")
        start = time.monotonic()
        with pytest.raises(PullError) as err:
            pull(conn, local_dir=local, log=io.StringIO(), via=via, stall_s=2)
        took = time.monotonic() - start
        assert "stalled: nothing for 2 s" in str(err.value) and "rerun" in str(err.value)
        assert took < 20, took
        left = conn.run("pgrep -f '[s]leep 1000' || true").stdout.strip()
        assert left == "", left
        monkeypatch.setattr(remote.pull, "tar_command", real)
        pull(conn, local_dir=local, log=io.StringIO(), via=via, stall_s=2)
        assert local_sha(local / "big.bin") == remote_sha(conn, "big.bin")


@pytest.mark.sshd
def test_a_listing_that_hangs_is_an_error_and_leaves_no_remote_process(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote.pull, "list_command", lambda _d: "sleep 1001")
    with Connection(target) as conn:
        with pytest.raises(PullError) as err:
            pull(conn, local_dir=tmp_path / "dest", log=io.StringIO(), stall_s=2)
        assert "the listing stalled: nothing for 2 s" in str(err.value)
        assert conn.run("pgrep -f '[s]leep 1001' || true").stdout.strip() == ""
