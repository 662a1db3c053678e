"""sync's two transports that run a local program: tar through the system ssh client, and
rsync over that ssh. Both are fed here and report a broken pipe or a non-zero exit as a
SyncError carrying the tail of the program's stderr."""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from remote.errors import SyncError, tail
from remote.openssh import rsync_rsh, ssh_argv
from remote.progress import Progress
from remote.selection import FS_ENCODING, FS_ERRORS, LocalFile
from remote.ssh import Target
from remote.tarwrite import TAR_BUFFER, write_tar


def upload_tar_ssh(t: Target, command: str, src: Path, files: list[LocalFile],
                   progress: Progress | None, doing: str) -> None:
    """Stream a tar of ``files`` into ``command`` (the remote extract) through ssh."""
    argv = ssh_argv(t, command)
    _run_local(t, argv, doing, lambda stdin: write_tar(stdin, src, files, progress))


def upload_rsync(t: Target, src: Path, dest: str, files: list[LocalFile],
                 progress: Progress | None, doing: str) -> None:
    """rsync exactly ``files`` (``--files-from``) into ``dest``; progress from its lines."""
    argv = [
        "rsync", "-lpt", "--omit-dir-times", "--from0", "--files-from=-", "--protect-args",
        "--out-format=%i %l", "-e", rsync_rsh(t),
        f"{src}/", f"{t.user}@{_rsync_host(t.host)}:{dest}/",
    ]
    listing = b"".join(f.path.encode(FS_ENCODING, FS_ERRORS) + b"\0" for f in files)

    def feed(stdin: IO[bytes]) -> None:
        stdin.write(listing)

    def on_line(line: str) -> None:
        code, _, size = line.partition(" ")
        if progress is not None and code[:2] in (">f", "cL") and size.isdigit():
            progress.advance(1, int(size))

    _run_local(t, argv, doing, feed, on_line if progress is not None else None)


def _rsync_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _run_local(t: Target, argv: list[str], doing: str, feed: Callable[[IO[bytes]], None],
               on_line: Callable[[str], None] | None = None) -> None:
    """Run ssh/rsync feeding its stdin; a broken pipe or a non-zero exit becomes SyncError
    with the tail of its stderr (kept in a file so a chatty stderr cannot block it)."""
    with tempfile.TemporaryFile() as errfile:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, bufsize=TAR_BUFFER,
                                stdout=subprocess.PIPE if on_line else subprocess.DEVNULL,
                                stderr=errfile)
        reader = None
        if on_line is not None:
            assert proc.stdout is not None
            reader = threading.Thread(target=_read_lines, args=(proc.stdout, on_line),
                                      daemon=True)
            reader.start()
        assert proc.stdin is not None
        broken = False
        try:
            feed(proc.stdin)
            proc.stdin.close()
        except BrokenPipeError:
            broken = True
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                broken = True
        code = proc.wait()
        if reader is not None:
            reader.join()
        errfile.seek(0)
        err = errfile.read()
    if code != 0 or broken:
        what = argv[0] + (" could not connect or lost the connection" if code == 255 else
                          f" exited {code}")
        raise SyncError(t.host, t.port, doing, f"{what}: {tail(err)}")


def _read_lines(stream: IO[bytes], on_line: Callable[[str], None]) -> None:
    for raw in stream:
        on_line(raw.decode(errors="replace").rstrip("\n"))
