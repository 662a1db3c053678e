"""remote.batch: task-file parsing (pure), and batches against a vastsim instance's real sshd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from remote.batch import (
    MAX_TASK_BYTES,
    Task,
    parse_tasks,
    read_tasks,
    run_batch,
    task_from_argv,
    tasks_from_argv,
)
from remote.errors import TaskDisconnected, TaskFileError
from remote.ssh import Connection, Target
from vastsim.testing import VastSim

ROOT = Path(__file__).resolve().parents[2]

RUN_DIRECT = """#!/bin/sh
# test stand-in for the app's run-direct: behaves according to its first argument
name=$1; shift
case "$name" in
  args) for a in "$@"; do echo "arg=[$a]"; done ;;
  fail) echo "about to fail"; echo "bad thing" >&2; exit 3 ;;
  slow) echo first; sleep 1.5; echo second ;;
  hang) echo hanging; sleep 1000 & sleep 1001; wait ;;
  *) echo "ran $name $*" ;;
esac
"""


def upload_run_direct(conn: Connection, script: str = RUN_DIRECT) -> None:
    conn.run("cat > /app/run-direct && chmod +x /app/run-direct", stdin=script.encode())


class StampedWriter:
    """A text stream that remembers when each piece was written."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []
        self.changed = threading.Condition()

    def write(self, text: str) -> int:
        with self.changed:
            self.writes.append((time.monotonic(), text))
            self.changed.notify_all()
        return len(text)

    def wait_for(self, needle: str, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: needle in self.text(), timeout)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        return "".join(t for _, t in self.writes)

    def first(self, needle: str) -> float:
        return next(at for at, t in self.writes if needle in t)


# --- parsing (pure) -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("a\nb c\n", [("a", 1), ("b c", 2)]),
    ("# comment\n\n   \n  # indented comment\nrun 1\n", [("run 1", 5)]),
    ("  spaced  out  \n", [("spaced  out", 1)]),
    ("train --name 'a b' --x \"c d\"\n", [("train --name 'a b' --x \"c d\"", 1)]),
    ("a # trailing comment stays\n", [("a # trailing comment stays", 1)]),
    ("x\r\ny\r\n", [("x", 1), ("y", 2)]),
    ("", []),
])
def test_parse_tasks(text: str, expected: list[tuple[str, int]]) -> None:
    assert [(t.line, t.line_no) for t in parse_tasks(text)] == expected


@pytest.mark.parametrize(("text", "bad_line"), [
    ("ok\nrun 'unclosed\n", 2),
    ("# c\n\nrun \"half\n", 3),
    ("run trailing\\\n", 1),
])
def test_parse_tasks_bad_quoting_names_file_and_line(text: str, bad_line: int) -> None:
    with pytest.raises(TaskFileError) as err:
        parse_tasks(text, "jobs.txt")
    assert err.value.line_no == bad_line
    assert f"jobs.txt:{bad_line}:" in str(err.value)
    assert err.value.line in str(err.value)


@pytest.mark.parametrize(("argv", "lines"), [
    (["sine", "440"], ["sine 440"]),
    (["speak", "--text", "hi there"], ["speak --text 'hi there'"]),
    (["hello a", "hello b"], ["hello a", "hello b"]),  # the old script's -- TASK [TASK...]
    (["sine 440 --out 'a b.wav'", "sine 880"], ["sine 440 --out 'a b.wav'", "sine 880"]),
    (["one whole line"], ["'one whole line'"]),
])
def test_the_words_after_the_double_dash(argv: list[str], lines: list[str]) -> None:
    tasks = tasks_from_argv(argv)
    assert [t.line for t in tasks] == lines
    assert [t.line_no for t in tasks] == list(range(1, len(lines) + 1))


def test_a_task_word_of_several_lines_or_bad_quoting_is_refused() -> None:
    with pytest.raises(TaskFileError, match="holds 2 task lines"):
        tasks_from_argv(["a 1\nb 2", "c 3"])
    with pytest.raises(TaskFileError, match="word 2"):
        tasks_from_argv(["a 1", "b 'unclosed"])


def test_task_from_argv_quotes_each_word() -> None:
    task = task_from_argv(["train", "--name", "a b", "it's"])
    assert task.line == "train --name 'a b' 'it'\"'\"'s'"
    assert task.slug == "train"
    assert Task("./scripts/sine.py --f 3", 1).slug == "sine.py"


@pytest.mark.parametrize(("data", "says"), [
    (b"", "holds no task"),
    (b"# only a comment\n\n   \n", "holds no task"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "is not UTF-8 text (byte 0)"),
    (b"sine 440\n\x00\x01\x02\n", "holds NUL bytes"),
])
def test_a_tasks_file_that_would_run_nothing_is_refused(
    tmp_path: Path, data: bytes, says: str
) -> None:
    path = tmp_path / "jobs.txt"
    path.write_bytes(data)
    with pytest.raises(TaskFileError) as err:
        read_tasks(path)
    assert says in str(err.value) and str(path) in str(err.value)


def test_a_missing_or_unreadable_tasks_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError) as err:
        read_tasks(tmp_path / "nope.txt")
    assert "nope.txt: cannot be read" in str(err.value)
    with pytest.raises(TaskFileError) as err:
        read_tasks(tmp_path)  # a directory
    assert "cannot be read" in str(err.value)


def test_a_task_line_over_the_argument_limit_is_refused_naming_the_line() -> None:
    long = "sine " + "x" * MAX_TASK_BYTES
    with pytest.raises(TaskFileError) as err:
        parse_tasks(f"ok 1\n{long}\n", "jobs.txt")
    assert err.value.line_no == 2 and f"over the {MAX_TASK_BYTES}" in str(err.value)
    assert len(str(err.value)) < 400  # the message names the line, it does not repeat it
    with pytest.raises(TaskFileError) as err:
        task_from_argv(["sine", "x" * MAX_TASK_BYTES])
    assert "the task after --:1:" in str(err.value)


# --- against sshd ---------------------------------------------------------------------------


@pytest.mark.sshd
def test_batch_runs_every_task_keeps_logs_and_counts_failures(
    target: Target, tmp_path: Path
) -> None:
    out = StampedWriter()
    tasks = parse_tasks("args one 'two words' \"$HOME\"\nfail now\n# skipped\nplain x\n")
    with Connection(target) as conn:
        upload_run_direct(conn)
        batch = run_batch(conn, tasks, logs_dir=tmp_path / "logs", out=out)
    assert [r.exit_code for r in batch.results] == [0, 3, 0]
    assert batch.failed == 1 and not batch.ok
    text = out.text()
    # the remote shell parsed the line as written: quotes group, $HOME expands there
    assert "[1/3 args] arg=[two words]\n" in text and "[1/3 args] arg=[/root]\n" in text
    assert "[2/3 fail:err] bad thing\n" in text and "[2/3 fail] about to fail\n" in text
    assert "warning: task 2/3 failed (exit 3): fail now" in text
    assert "[3/3 plain] ran plain x\n" in text
    summary_table = text[text.rindex("#  task"):]
    assert "fail now" in summary_table and "failed" in summary_table
    assert "2 ok, 1 failed" in summary_table
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == [
        "01-args.log", "02-fail.log", "03-plain.log", "summary.json"]
    # stdout and stderr are separate pipes: their relative order is not kept, only each one's
    assert sorted((logs / "02-fail.log").read_text().splitlines()) == [
        "about to fail", "bad thing"]
    summary = json.loads((logs / "summary.json").read_text())
    assert [(t["line"], t["exit_code"], t["status"]) for t in summary["tasks"]] == [
        (tasks[0].line, 0, "ok"), ("fail now", 3, "failed"), ("plain x", 0, "ok")]
    assert summary["failed"] == 1 and all(t["duration_s"] >= 0 for t in summary["tasks"])


@pytest.mark.sshd
def test_output_streams_live(target: Target, tmp_path: Path) -> None:
    out = StampedWriter()
    with Connection(target) as conn:
        upload_run_direct(conn)
        run_batch(conn, [Task("slow", 1)], logs_dir=tmp_path / "logs", out=out)
    first, second = out.first("[1/1 slow] first"), out.first("[1/1 slow] second")
    assert second - first > 1.0  # "first" was shown while the task still slept


DRIVER = """
import sys
from pathlib import Path
from remote.batch import Task, run_batch
from remote.ssh import Connection, Target
host, port, key, known, logs = sys.argv[1:]
with Connection(Target(host, int(port), Path(key), Path(known))) as conn:
    run_batch(conn, [Task("hang", 1), Task("plain never", 2)], logs_dir=Path(logs),
              out=sys.stdout)
"""


def remote_processes(target: Target) -> str:
    with Connection(target) as conn:
        return conn.run("ps -e -o pid,args").stdout


@pytest.mark.sshd
def test_ctrl_c_stops_the_remote_task_and_leaves_nothing_behind(
    target: Target, tmp_path: Path
) -> None:
    with Connection(target) as conn:
        upload_run_direct(conn)
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, target.host, str(target.port), str(target.key_path),
         str(target.known_hosts), str(tmp_path / "logs")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
    )
    assert driver.stdout is not None
    seen = []
    try:
        for line in driver.stdout:  # ends at EOF if the driver dies: then the assert says why
            seen.append(line)
            if "[1/2 hang] hanging" in line:
                break
        assert any("hanging" in line for line in seen), "".join(seen)
        assert "sleep 1000" in remote_processes(target)  # the check below can see it
        driver.send_signal(signal.SIGINT)
        rest, _ = driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    output = "".join(seen) + rest
    assert driver.returncode != 0
    assert "KeyboardInterrupt" in output and "interrupted" in output
    assert "plain never" not in output.split("interrupted")[0]
    left = remote_processes(target)
    assert "sleep 100" not in left and "run-direct" not in left, left
    summary = json.loads((tmp_path / "logs" / "summary.json").read_text())
    assert [(t["line"], t["status"], t["exit_code"]) for t in summary["tasks"]] == [
        ("hang", "interrupted", None)]
    assert summary["total"] == 2
    assert (tmp_path / "logs" / "01-hang.log").read_text() == "hanging\n"


@pytest.mark.sshd
def test_dropped_connection_mid_task_is_a_clear_error(
    rent: Callable[..., tuple[int, Target]], vastsim: VastSim, tmp_path: Path
) -> None:
    instance_id, target = rent()
    out = StampedWriter()

    def kill_when_started() -> None:
        out.wait_for("hanging", timeout=20)
        vastsim.admin_post(f"/instances/{instance_id}/kill", {"status": "offline"})

    killer = threading.Thread(target=kill_when_started)
    with Connection(target) as conn:
        upload_run_direct(conn)
        killer.start()
        with pytest.raises(TaskDisconnected) as err:
            run_batch(conn, [Task("hang", 1)], logs_dir=tmp_path / "logs", out=out)
    killer.join()
    message = str(err.value)
    assert "`hang`" in message and f"{target.host}:{target.port}" in message
    assert "01-hang.log" in message
    assert (tmp_path / "logs" / "01-hang.log").read_text() == "hanging\n"
    summary = json.loads((tmp_path / "logs" / "summary.json").read_text())
    assert summary["tasks"][0]["status"] == "disconnected"


@pytest.mark.sshd
def test_a_task_line_at_the_limit_still_runs(target: Target, tmp_path: Path) -> None:
    """The limit is the instance's, not ours: a line just under it reaches run-direct whole."""
    word = "y" * (MAX_TASK_BYTES - len("args "))
    [task] = parse_tasks(f"args {word}\n")
    out = StampedWriter()
    with Connection(target) as conn:
        upload_run_direct(conn)
        batch = run_batch(conn, [task], logs_dir=tmp_path / "logs", out=out)
    assert batch.ok and f"arg=[{word}]" in out.text()


BINARY = b"text\r\nwith crlf\rcr only\x00nul\xff\xfe high bytes\n\x1b[1mansi\x1b[0m no newline"


@pytest.mark.sshd
def test_binary_output_reaches_the_log_byte_for_byte(target: Target, tmp_path: Path) -> None:
    with Connection(target) as conn:
        upload_run_direct(conn, "#!/bin/sh\nexec cat /app/blob\n")
        conn.run("cat > /app/blob", stdin=BINARY)
        batch = run_batch(conn, [Task("blob", 1)], logs_dir=tmp_path / "logs", out=StampedWriter())
    assert batch.ok
    assert (tmp_path / "logs" / "01-blob.log").read_bytes() == BINARY
