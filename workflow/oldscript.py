"""The old `make vast-run ARGS='...'`: its ARGS, in the old script's flags, as deploy options.

scripts/vast-deploy.sh took `--tasks FILE`, `--shell`, `--job NAME`, `--ssh-key PATH`,
`--no-sync`, `--no-pull`, `--keep`, `--dry-run`, `-h/--help` and `-- TASK...`; `make vast-run`
passed `ARGS` and `TASKS=` through to it. Here ARGS is split as a shell splits it, each word
must be one of those flags (a word we do not understand is an error, never ignored: a dry run
that is silently dropped really rents), and after `--` come the task's words, or several
whole quoted task lines (`-- 'sine 440' 'sine 880'`), as with `inv deploy -- ...`
(remote.batch.tasks_from_argv).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from remote.batch import Task, tasks_from_argv
from workflow.console import say
from workflow.errors import OptionError
from workflow.pulumi import Stack, selected_stack_or_none
from workflow.settings import raw_config

OLD_SCRIPT_IMAGE = "ghcr.io/coriou/voice-tools:cuda"
"""The old script's VAST_IMAGE default, used when no flag, VAST_IMAGE or base stack sets one."""
SWITCHES = {"--shell": "shell", "--no-sync": "no_sync", "--no-pull": "no_pull",
            "--keep": "keep", "--dry-run": "dry_run", "-h": "help", "--help": "help"}
VALUED = {"--tasks": "tasks_file", "--job": "job", "--ssh-key": "ssh_key"}
USAGE = """make vast-run [TASKS=FILE] [ARGS='OPTIONS [-- TASK]'] [STACK=base-stack]
  --tasks FILE     tasks file, one ./run-direct line per line (same as TASKS=FILE)
  --shell          a shell on the instance; alone (no tasks) the instance is kept
  --job NAME       job name: logs in work_remote/NAME/, /work in work_remote/NAME/work/
  --ssh-key PATH   private key to log in with
  --no-sync        do not upload your code to /app
  --no-pull        do not bring /work home
  --keep           do not destroy the instance afterwards
  --dry-run        print every step and the offer it would rent; rent nothing
  -- TASK...       the task itself, e.g. -- voice-synth speak --text "hi", or several
                   whole quoted tasks: -- 'sine 440' 'sine 880'
The same as `inv deploy` with those flags; `inv --help deploy` has the rest."""


@dataclass
class OldArgs:
    tasks_file: str | None = None
    task_words: list[str] = field(default_factory=list)
    shell: bool = False
    job: str | None = None
    ssh_key: str | None = None
    no_sync: bool = False
    no_pull: bool = False
    keep: bool = False
    dry_run: bool = False
    help: bool = False


def parse_args(args: str, tasks_file: str | None = None) -> OldArgs:
    """ARGS (one string, as make passes it) and TASKS= -> OldArgs; OptionError on any word
    that is not an old-script flag, a flag without its value, or tasks given twice."""
    try:
        words = shlex.split(args)
    except ValueError as exc:
        raise OptionError("ARGS", args, f"cannot be split into words ({exc})") from None
    parsed = OldArgs(tasks_file=tasks_file or None)
    i = 0
    while i < len(words):
        word = words[i]
        name, eq, inline = word.partition("=")
        if word == "--":
            parsed.task_words = words[i + 1:]
            if not parsed.task_words:
                raise OptionError("ARGS", args, "nothing after `--`: the task goes there")
            break
        if word in SWITCHES:
            setattr(parsed, SWITCHES[word], True)
        elif name in VALUED:
            if eq:
                value = inline
            elif i + 1 < len(words):
                i += 1
                value = words[i]
            else:
                value = ""
            if not value or (not eq and value.startswith("-")):
                raise OptionError("ARGS", args, f"{name} needs a value, e.g. {name} "
                                  f"{'my-jobs.txt' if name == '--tasks' else 'VALUE'}")
            if name == "--tasks" and parsed.tasks_file and parsed.tasks_file != value:
                raise OptionError("ARGS", args, f"two tasks files: TASKS={parsed.tasks_file} "
                                  f"and --tasks {value}; give one")
            setattr(parsed, VALUED[name], value)
        else:
            hint = (" (the task goes after `--`: ARGS='-- " + " ".join(words[i:]) + "')"
                    if not word.startswith("-") else "")
            raise OptionError("ARGS", args, f"{word!r} is not an option of the old script"
                              f"{hint}; it knows: {', '.join([*SWITCHES, *VALUED, '--'])}")
        i += 1
    if parsed.tasks_file and parsed.task_words:
        raise OptionError("ARGS", args, f"tasks from {parsed.tasks_file} and after `--`: "
                          "give one of them")
    return parsed


def inline_tasks(words: list[str]) -> list[Task]:
    """The words after `--` as tasks, the way `inv deploy -- ...` makes them."""
    return tasks_from_argv(words)


def base_and_image(stack: str | None, env: Mapping[str, str]) -> tuple[str | None, dict[str, str]]:
    """The base stack (STACK=, else the selected one, else none) and the image flag the old
    script's default gives when neither VAST_IMAGE nor the base sets one; both said."""
    base = stack or selected_stack_or_none()
    say(f"vast-run: base stack {base!r} ({'STACK=' if stack else 'the selected one'})"
        if base else "vast-run: no base stack (none selected; STACK= picks one)")
    if env.get("VAST_IMAGE") or raw_config(Stack(base) if base else None).get("vast-gpu:image"):
        return base, {}
    say(f"vast-run: image {OLD_SCRIPT_IMAGE} (the old script's default; VAST_IMAGE= changes "
        "it)")
    return base, {"image": OLD_SCRIPT_IMAGE}
