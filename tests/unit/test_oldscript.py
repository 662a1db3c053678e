"""The old script's ARGS, parsed into deploy's options: every flag it had, nothing else."""

from __future__ import annotations

import pytest

from workflow.errors import OptionError
from workflow.oldscript import inline_tasks, parse_args


def test_every_flag_of_the_old_script_is_understood() -> None:
    old = parse_args("--no-sync --keep --dry-run --shell --no-pull --job j1 --ssh-key=~/k")
    assert (old.no_sync, old.keep, old.dry_run, old.shell, old.no_pull) == (True,) * 5
    assert (old.job, old.ssh_key, old.tasks_file, old.task_words) == ("j1", "~/k", None, [])
    assert parse_args("-h").help and parse_args("--help").help
    assert parse_args("", "my-jobs.txt").tasks_file == "my-jobs.txt"
    assert parse_args("--tasks a.txt").tasks_file == "a.txt"


def test_everything_after_the_double_dash_is_the_task_with_its_own_flags() -> None:
    old = parse_args('--keep -- voice-synth speak --voice x --text "hi there"')
    assert old.keep
    assert old.task_words == ["voice-synth", "speak", "--voice", "x", "--text", "hi there"]
    [task] = inline_tasks(old.task_words)
    assert task.line == "voice-synth speak --voice x --text 'hi there'"


@pytest.mark.parametrize(("args", "says"), [
    ("--dryrun", "'--dryrun' is not an option of the old script"),
    ("voice-synth speak", "the task goes after `--`: ARGS='-- voice-synth speak'"),
    ("--job", "--job needs a value"),
    ("--job --keep", "--job needs a value"),
    ("--", "nothing after `--`"),
    ("--text 'unclosed", "cannot be split into words"),
])
def test_a_word_that_is_not_understood_is_an_error(args: str, says: str) -> None:
    with pytest.raises(OptionError, match="ARGS") as err:
        parse_args(args)
    assert says in str(err.value)


def test_tasks_given_twice_is_an_error() -> None:
    with pytest.raises(OptionError, match="two tasks files"):
        parse_args("--tasks b.txt", "a.txt")
    with pytest.raises(OptionError, match="give one of them"):
        parse_args("-- hello", "a.txt")
