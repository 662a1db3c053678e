"""remote.sync: what is selected (pure), and uploads to a vastsim instance's real sshd."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import remote.sync
from providers.api import VastClient
from remote.errors import SyncError
from remote.progress import Progress
from remote.selection import MANIFEST, IgnoreRules, LocalFile, select_files
from remote.ssh import Connection, Target, login_probe
from remote.sync import choose_method, sync
from remote.syncplan import RemoteFile, RemoteState, make_plan, parse_manifest, render_manifest
from remote.tarwrite import write_tar
from vastsim.testing import VastSim

METHODS = ("tar-paramiko", "tar-ssh", "rsync")
ALL_TOOLS = frozenset({"tar", "rsync", "ssh"})


def write(root: Path, rel: str, text: str = "x", mode: int | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if mode is not None:
        path.chmod(mode)
    return path


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


def paths(src: Path) -> list[str]:
    return [f.path for f in select_files(src)]


# --- selection (pure) ----------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "path", "is_dir", "ignored"), [
    ("*.log", "a.log", False, True),
    ("*.log", "deep/er/a.log", False, True),
    ("*.log", "a.logx", False, False),
    ("/top.txt", "top.txt", False, True),
    ("/top.txt", "sub/top.txt", False, False),
    ("build/", "build", True, True),
    ("build/", "build", False, False),      # a file named build is not the dir
    ("build/", "src/build/x.o", False, True),  # inside an ignored dir, at any depth
    ("doc/*.md", "doc/a.md", False, True),
    ("doc/*.md", "x/doc/a.md", False, False),  # a middle slash anchors
    ("doc/*.md", "doc/sub/a.md", False, False),  # * does not cross /
    ("**/cache", "a/b/cache", True, True),
    ("a/**/z", "a/z", False, True),
    ("a/**/z", "a/b/c/z", False, True),
    ("data/**", "data/x/y", False, True),
    ("fil?.txt", "file.txt", False, True),
    ("fil?.txt", "fil/.txt", False, False),
    ("[ab].py", "b.py", False, True),
    ("[!ab].py", "b.py", False, False),
    ("# comment", "# comment", False, False),
    ("\\#hash", "#hash", False, True),
])
def test_ignore_patterns(pattern: str, path: str, is_dir: bool, ignored: bool) -> None:
    assert IgnoreRules([pattern]).ignored(path, is_dir=is_dir) is ignored


def test_ignore_negation_and_excluded_dirs() -> None:
    rules = IgnoreRules(["*.log", "!keep.log", "out/", "!out/keep.txt"])
    assert rules.ignored("x.log") and not rules.ignored("keep.log")
    assert not rules.ignored("sub/keep.log")
    # as in git: nothing inside an excluded directory can be re-included
    assert rules.ignored("out/keep.txt")


def test_git_tree_sends_tracked_and_untracked_but_not_ignored(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, ".gitignore", "*.pyc\nbuild/\n")
    write(src, "tracked.py")
    write(src, "pkg/mod.py")
    git(src, "init", "-q")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "init")
    write(src, "untracked.py")
    write(src, "junk.pyc")
    write(src, "build/out.bin")
    write(src, "tracked_then_deleted.py")
    git(src, "add", "tracked_then_deleted.py")
    (src / "tracked_then_deleted.py").unlink()
    write(src, ".vastignore", "pkg/\n")
    assert paths(src) == [".gitignore", ".vastignore", "tracked.py", "untracked.py"]


def test_subdir_of_a_git_repo_lists_relative_to_itself(tmp_path: Path) -> None:
    write(tmp_path, "outside.py")
    write(tmp_path, "app/inside.py")
    git(tmp_path, "init", "-q")
    assert paths(tmp_path / "app") == ["inside.py"]


def test_vastignore_negation_dirs_and_anchors_without_git(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for rel in ("main.py", "data/big.bin", "data/small.txt", "logs/a.log", "logs/keep.log",
                "sub/data/x", "notes.md", "docs/notes.md", ".git/config", "node/.git/HEAD"):
        write(src, rel)
    write(src, ".vastignore",
          "# heavy things\n/data/*\n!/data/small.txt\n*.log\n!keep.log\n/notes.md\n")
    assert paths(src) == [".vastignore", "data/small.txt", "docs/notes.md", "logs/keep.log",
                          "main.py", "sub/data/x"]


def test_symlinks_are_listed_as_links_never_followed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, "real/file.txt", "hello")
    (src / "to_passwd").symlink_to("/etc/passwd")
    (src / "to_dir").symlink_to("real")
    (src / "dangling").symlink_to("nowhere")
    files = {f.path: f for f in select_files(src)}
    assert set(files) == {"real/file.txt", "to_passwd", "to_dir", "dangling"}
    assert files["to_passwd"].link == "/etc/passwd" and files["to_passwd"].size == 0
    assert files["to_dir"].link == "real"


def test_missing_src_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not a directory"):
        select_files(tmp_path / "nope")


# --- plan (pure) ---------------------------------------------------------------------------


def test_plan_sends_changed_and_deletes_only_what_it_sent() -> None:
    local = [LocalFile("same", 3, 100, 0o644), LocalFile("newer", 3, 200, 0o644),
             LocalFile("chmod", 3, 100, 0o755), LocalFile("new", 1, 1, 0o644),
             LocalFile("link", 0, 1, 0o777, "target")]
    remote = RemoteState(ALL_TOOLS, {
        "same": RemoteFile("f", 3, 100, 0o644), "newer": RemoteFile("f", 3, 100, 0o644),
        "chmod": RemoteFile("f", 3, 100, 0o644), "link": RemoteFile("l", 6, 5, 0o777, "target"),
        "gone": RemoteFile("f", 1, 1, 0o644), "job-output": RemoteFile("f", 1, 1, 0o644),
    }, frozenset({"same", "newer", "chmod", "link", "gone", "gone-already"}))
    plan = make_plan(local, remote)
    assert [f.path for f in plan.send] == ["newer", "chmod", "new"]
    assert plan.delete == ["gone"]  # not job-output (never sent), not gone-already (absent)
    assert plan.unchanged == 2 and plan.manifest == ["chmod", "link", "new", "newer", "same"]


def test_manifest_round_trip_drops_truncated_and_unsafe_entries() -> None:
    raw = render_manifest(["a", "dir/b", "../escape", "/abs", "ok/./x"]).decode()
    assert parse_manifest(raw) == {"a", "dir/b"}
    cut = render_manifest(["a", "dir/bee"]).decode()[:-3]  # "dir/b" must not be trusted
    assert parse_manifest(cut) == {"a"}
    assert parse_manifest("") == frozenset() and parse_manifest("junk\0a\0") == frozenset()


def test_choose_method() -> None:
    assert choose_method("auto", ALL_TOOLS, ALL_TOOLS) == "tar-paramiko"
    assert choose_method("auto", frozenset({"rsync"}), ALL_TOOLS) == "rsync"
    assert choose_method("auto", frozenset(), ALL_TOOLS) == "tar-paramiko"  # then: no tar
    assert choose_method("tar", ALL_TOOLS, ALL_TOOLS) == "tar-ssh"
    assert choose_method("tar", ALL_TOOLS, frozenset()) == "tar-paramiko"
    assert choose_method("rsync", ALL_TOOLS, ALL_TOOLS) == "rsync"
    with pytest.raises(ValueError, match="unknown sync method"):
        choose_method("scp", ALL_TOOLS, ALL_TOOLS)


def test_write_tar_is_a_tar_with_links_modes_and_whole_second_mtimes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, "bin/run", "#!/bin/sh\n", mode=0o755)
    write(src, "big", "b" * 300_000)
    (src / "link").symlink_to("/etc/passwd")
    out = io.BytesIO()
    write_tar(out, src, select_files(src), None, extra=[(MANIFEST, b"m")])
    assert len(out.getvalue()) % tarfile.RECORDSIZE == 0
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert list(members) == [MANIFEST, "big", "bin/run", "link"]
        assert members["bin/run"].mode == 0o755 and members["bin/run"].uid == 0
        assert members["link"].issym() and members["link"].linkname == "/etc/passwd"
        assert members["big"].mtime == int((src / "big").stat().st_mtime)
        assert tar.extractfile("big").read() == b"b" * 300_000  # type: ignore[union-attr]


def test_progress_plain_lines_and_tty_redraw() -> None:
    plain = io.StringIO()
    shown = Progress("sync", 3, 3_000_000, plain, tty=False)
    shown.advance(1, 1_000_000)  # too soon after the start for a plain line
    shown.advance(2, 2_000_000)
    shown.finish()
    shown.finish()
    assert plain.getvalue().count("\n") == 1
    assert plain.getvalue().startswith("sync: 3 files, 3.0 MB in ")
    tty = io.StringIO()
    shown = Progress("sync", 3, 3_000_000, tty, tty=True)
    shown._last_draw -= 10  # as if the last draw were old
    shown.advance(1, 1_000_000)
    shown.finish()
    assert tty.getvalue().startswith("\rsync: 1/3 files, 1.0/3.0 MB, ")
    assert "ETA" in tty.getvalue() and tty.getvalue().rstrip(" \n").endswith("MB/s)")


# --- against a real sshd -------------------------------------------------------------------


def remote_tree(conn: Connection, dest: str) -> str:
    """Every entry under dest with size, mode and type, and every file's md5."""
    listing = conn.run(f"cd {dest} && find . -printf '%p %s %m %y %l\\n' | LC_ALL=C sort").stdout
    sums = conn.run(f"cd {dest} && find . -type f ! -name {MANIFEST} -print0 | LC_ALL=C sort -z "
                    "| xargs -0 -r md5sum").stdout
    return listing + sums


def local_sums(src: Path) -> dict[str, str]:
    return {f.path: hashlib.md5((src / f.path).read_bytes()).hexdigest()
            for f in select_files(src) if f.link is None}


def remote_sums(conn: Connection, dest: str) -> dict[str, str]:
    out = conn.run(f"cd {dest} && find . -type f ! -name {MANIFEST} -print0 | xargs -0 -r md5sum")
    return {line[34:].removeprefix("./"): line[:32] for line in out.stdout.splitlines()}


def make_tree(src: Path, files: int = 200) -> None:
    for i in range(files):
        write(src, f"pkg{i % 5}/sub{i % 3}/f{i:04d}.py", f"# {i}\n" * (i % 40 + 1))


@pytest.mark.sshd
def test_first_sync_then_resync_then_one_change_then_delete(target: Target,
                                                            tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    with Connection(target) as conn:
        first = sync(conn, src, "/app", progress=False)
        assert (first.files_sent, first.unchanged, first.deleted) == (200, 0, 0)
        assert first.bytes_sent == sum(f.size for f in select_files(src))
        assert remote_sums(conn, "/app") == local_sums(src)

        again = sync(conn, src, "/app", progress=False)
        assert (again.files_sent, again.bytes_sent, again.unchanged) == (0, 0, 200)

        changed = src / "pkg1/sub1/f0001.py"
        changed.write_text("changed, same size? no\n")
        os.utime(changed, (time.time() + 5, time.time() + 5))
        one = sync(conn, src, "/app", progress=False)
        assert (one.files_sent, one.bytes_sent) == (1, changed.stat().st_size)

        conn.run("echo result > /app/pkg0/job-output.txt && mkdir -p /app/out && touch /app/out/x")
        (src / "pkg0/sub0/f0000.py").unlink()
        for f in (src / "pkg4/sub2").iterdir():  # a whole directory goes
            f.unlink()
        (src / "pkg4/sub2").rmdir()
        gone = sync(conn, src, "/app", progress=False)
        assert gone.files_sent == 0 and gone.deleted == 1 + 13
        assert remote_sums(conn, "/app") == {
            **local_sums(src), "pkg0/job-output.txt": hashlib.md5(b"result\n").hexdigest(),
            "out/x": hashlib.md5(b"").hexdigest()}
        assert conn.run("test -e /app/pkg4/sub2 || echo removed").stdout == "removed\n"


@pytest.mark.sshd
def test_methods_give_identical_trees_with_modes_links_and_odd_names(target: Target,
                                                                     tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, "run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    write(src, "private.txt", "p", mode=0o600)
    write(src, "with space/ünïcödé 名前.txt", "unicode")
    write(src, "deep/a/b/c/d.txt", "deep")
    write(src, "empty", "")
    (src / "to_passwd").symlink_to("/etc/passwd")
    (src / "rel_link").symlink_to("deep/a/b/c/d.txt")
    (src / "dangling").symlink_to("missing/target")
    trees = {}
    with Connection(target) as conn:
        for method in METHODS:
            dest = f"/app/{method}"
            result = sync(conn, src, dest, method=method, progress=False)
            assert (result.method, result.files_sent) == (method, 8)
            trees[method] = remote_tree(conn, dest)
            assert sync(conn, src, dest, method=method, progress=False).files_sent == 0
        tree = trees["tar-paramiko"]
        assert "./run.sh 18 755 f" in tree and "./private.txt 1 600 f" in tree
        assert "./to_passwd 11 777 l /etc/passwd" in tree  # the link, not passwd's content
        assert "./with space/ünïcödé 名前.txt 7 644 f" in tree
        assert "./dangling 14 777 l missing/target" in tree
        assert conn.run("cat '/app/tar-ssh/with space/ünïcödé 名前.txt'").stdout == "unicode"
        assert conn.run("/app/rsync/run.sh").stdout == "hi\n"
    assert trees["tar-ssh"] == tree and trees["rsync"] == tree


@pytest.mark.sshd
def test_a_file_replaced_by_a_directory_and_a_link_by_a_file(target: Target,
                                                             tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, "thing", "file")
    (src / "link").symlink_to("thing")
    with Connection(target) as conn:
        sync(conn, src, "/app", progress=False)
        (src / "thing").unlink()
        (src / "link").unlink()
        write(src, "thing/inside.txt", "now a dir")
        write(src, "link", "now a file")
        result = sync(conn, src, "/app", progress=False)
        assert (result.files_sent, result.deleted) == (2, 1)
        assert remote_sums(conn, "/app") == local_sums(src)


def _kill_and_restart(sim: VastSim, instance_id: int, target: Target) -> None:
    """Bring a killed instance back (same port, same host key) and wait for its sshd."""
    client = VastClient(sim.url, sim.api_key)
    try:
        client.set_state(instance_id, "running")
    finally:
        client.close()
    deadline = time.monotonic() + 30
    while (reason := login_probe(target.host, target.port, target.key_path)) is not None:
        assert time.monotonic() < deadline, reason
        time.sleep(0.1)


@pytest.mark.sshd
@pytest.mark.parametrize("method", ["tar-paramiko", "tar-ssh"])
def test_sshd_killed_mid_upload_is_a_clear_error_and_a_rerun_completes(
    method: str, vastsim: VastSim, rent: Callable[..., tuple[int, Target]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instance_id, target = rent()
    src = tmp_path / "src"
    make_tree(src, 300)
    write(src, "big.bin", "z" * 3_000_000)  # cut mid-file: must not pass for complete later
    real_advance = Progress.advance
    sent = []

    def advance_then_kill(self: Progress, files: int = 0, nbytes: int = 0) -> None:
        real_advance(self, files, nbytes)
        sent.append(files)
        if len(sent) == 150:  # half way, and big.bin (sorted first) already streamed
            vastsim.admin_post(f"/_sim/instances/{instance_id}/kill", {"status": "exited"})

    monkeypatch.setattr(Progress, "advance", advance_then_kill)
    with Connection(target) as conn, pytest.raises(SyncError) as err:
        sync(conn, src, "/app", method=method, stream=io.StringIO())
    message = str(err.value)
    assert f"{target.host}:{target.port}" in message
    assert "uploading 301 files to /app" in message and "rerun" in message
    monkeypatch.undo()

    _kill_and_restart(vastsim, instance_id, target)
    with Connection(target) as conn:
        result = sync(conn, src, "/app", method=method, progress=False)
        assert result.files_sent > 0
        assert remote_sums(conn, "/app") == local_sums(src)
        assert sync(conn, src, "/app", method=method, progress=False).files_sent == 0


@pytest.mark.sshd
def test_rsync_with_sshd_gone_before_the_upload_is_a_clear_error(
    vastsim: VastSim, rent: Callable[..., tuple[int, Target]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instance_id, target = rent()
    src = tmp_path / "src"
    make_tree(src, 20)
    import remote.uploads as uploads_module

    real = uploads_module.upload_rsync

    def kill_then_upload(*args: object, **kwargs: object) -> None:
        vastsim.admin_post(f"/_sim/instances/{instance_id}/kill", {"status": "exited"})
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(uploads_module, "upload_rsync", kill_then_upload)
    with Connection(target) as conn, pytest.raises(SyncError) as err:
        sync(conn, src, "/app", method="rsync", progress=False)
    message = str(err.value)
    assert f"ssh {target.host}:{target.port}: uploading 20 files to /app (rsync)" in message
    assert "rerun" in message


@pytest.mark.sshd
def test_progress_is_shown(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 10)
    out = io.StringIO()
    with Connection(target) as conn:
        sync(conn, src, "/app", progress=True, stream=out)
    assert f"-> {target.host}:/app: 10 files" in out.getvalue()


@pytest.mark.sshd
def test_both_names_of_a_hard_linked_file_are_synced(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, "d/a", "shared")
    os.link(src / "d/a", src / "b")
    with Connection(target) as conn:
        for method in METHODS:
            dest = f"/app/{method}"
            assert sync(conn, src, dest, method=method, progress=False).files_sent == 2
            assert conn.run(f"cat {dest}/d/a {dest}/b").stdout == "sharedshared"


@pytest.mark.sshd
@pytest.mark.parametrize("method", ["tar-paramiko", "tar-ssh"])
def test_an_extract_that_exits_0_without_reading_is_not_a_success(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    src = tmp_path / "src"
    for i in range(3):
        write(src, f"f{i}.txt", "data" * i)
    (src / "link").symlink_to("f1.txt")
    monkeypatch.setattr(remote.sync, "extract_command", lambda: "true")  # reads nothing
    with Connection(target) as conn:
        with pytest.raises(SyncError) as err:
            sync(conn, src, "/app/x", method=method, progress=False)
        # the check after the upload says what is missing; when the extract's early exit
        # already closed the session, the listing fails first: either way not a success
        said = str(err.value)
        assert ("4 files sent, 0 arrived" in said and "f0.txt" in said) or (
            "Socket is closed" in said and "rerun the sync" in said), said
        monkeypatch.undo()
        assert sync(conn, src, "/app/x", method=method, progress=False).files_sent == 4
