"""`inv deploy`: the old bash script in one command, with teardown that cannot be skipped.

A stack of its own for the job (from a base stack's config plus flags or VAST_IMAGE,
VAST_DISK, VAST_QUERY), then up, sync, run, pull, destroy, stack removed. Everything that can
be checked is checked before the stack is created (preflight): the tasks, the job name, the
source tree, the SSH key, the image, the passphrase. Teardown (workflow/teardown.py) runs in
`finally` unless the instance is kept, and nothing the job does first, a failed pull, a closed
pipe or a signal included, can skip it. `--shell` without tasks is the old script's shell: a
fresh instance, your shell on it, kept afterwards. The job's stack is always a new one: on a
shared backend a stack of the same name is someone else's, and deploy neither rents into it
nor tears it down.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from providers.cost import gb
from providers.errors import SelectionError
from providers.settings import Settings
from remote.batch import BatchResult, Task
from remote.errors import KeyPairError
from remote.keys import find_key_pair
from remote.selection import select_files
from remote.shell import interactive_shell
from workflow.connect import readable_key, target_for
from workflow.console import safe, safe_std_streams, say
from workflow.errors import OptionError, TasksFailed
from workflow.jobs import check_job, remember_job
from workflow.outputs import parse_outputs
from workflow.paths import WORK_REMOTE, pulled_dir
from workflow.pulumi import Stack
from workflow.pulumi_env import is_local_stack
from workflow.recovery import MAX_LOST, ON_LOST, work
from workflow.report import RunReport
from workflow.search import selection_for, summary
from workflow.settings import raw_config, settings_of
from workflow.source import Source
from workflow.teardown import signals_as_interrupt, teardown, unstoppable

ENV_OVERRIDES = {"VAST_IMAGE": "image", "VAST_DISK": "disk", "VAST_QUERY": "query"}
PASSPHRASE_VARS = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")


@dataclass(frozen=True)
class DeployOptions:
    tasks: Sequence[Task]
    job: str
    base_stack: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    """Stack config overrides (image, disk, query); flags win over VAST_* env vars."""
    src: Path | None = None
    """The tree to sync (workflow/source.py chose it); None only with no_sync."""
    src_origin: str = "given"
    keep: bool = False
    shell: bool = False
    no_sync: bool = False
    no_pull: bool = False
    pull_each: bool = True
    """Pull workDir after every task (remote/pulleach.py); off with no_pull."""
    on_lost: str | None = None
    """"resume" or "stop" when the instance is lost; None: resume for a bid stack."""
    max_lost: int = MAX_LOST
    ssh_key: str | None = None
    dry_run: bool = False
    verbose: bool = False
    """Show pulumi's own output too (else only the provider's `vast-gpu:` lines)."""
    stack_prefix: str = "job"
    """Used without a base stack; `local` makes a vastsim stack (fixed passphrase, see README)."""

    @property
    def stack_name(self) -> str:
        return f"{self.base_stack or self.stack_prefix}-{self.job}"

    @property
    def results_dir(self) -> Path:
        return WORK_REMOTE / self.job

    @property
    def pulled_dir(self) -> Path:
        """The instance's workDir, apart from the logs and report this side writes."""
        return pulled_dir(self.job)

    @property
    def shell_only(self) -> bool:
        """The old script's --shell: no tasks, a shell on a fresh instance that is kept."""
        return self.shell and not self.tasks

    @property
    def keeps(self) -> bool:
        return self.keep or self.shell_only


def settings_from(flags: Mapping[str, str | None], env: Mapping[str, str]) -> dict[str, str]:
    """Flags win over the VAST_IMAGE / VAST_DISK / VAST_QUERY env vars of the old script."""
    out = {key: env[var] for var, key in ENV_OVERRIDES.items() if env.get(var)}
    out.update({k: v for k, v in flags.items() if v})
    return out


def preflight(opts: DeployOptions) -> tuple[list[str], Settings]:
    """Refuse (OptionError, KeyPairError) what would fail after renting; the warnings, and
    the settings the new stack will have (the base stack's config is read here, once)."""
    check_job(opts.job)
    if not opts.tasks and not opts.shell:
        raise OptionError("tasks", [], "no task to run: give --tasks FILE with at least one "
                          "line that is not a comment, or the task after --, or --shell for a "
                          "shell on the instance")
    if opts.on_lost not in (None, *ON_LOST):
        raise OptionError("--on-lost", opts.on_lost, "give resume (rent a new instance and run "
                          "the unfinished tasks there) or stop")
    if opts.max_lost < 0:
        raise OptionError("--max-lost", opts.max_lost, "give 0 or more instances")
    warnings: list[str] = []
    if not opts.no_sync:
        if opts.src is None:
            raise OptionError("--src", None, "no source tree to sync (or pass --no-sync)")
        source = Source(opts.src, opts.src_origin)
        source.check()
        if opts.tasks:
            warnings += source.warnings()
    base = Stack(opts.base_stack) if opts.base_stack else None
    if base is not None and not base.exists():
        raise OptionError("base stack", base.name, "no such stack (`pulumi stack ls` lists them)")
    base_config = raw_config(base)
    if not (opts.settings.get("image") or base_config.get("vast-gpu:image")):
        raise OptionError("image", None, "none given: pass --image IMAGE, set VAST_IMAGE, or "
                          "use a base stack (--base) that sets vast-gpu:image")
    settings = settings_of(base_config, opts.settings)  # checked as `pulumi up` will check it
    _check_key(opts, base_config)
    env = Stack(opts.stack_name).env()
    remote_backend = env.get("PULUMI_BACKEND_URL", "").startswith(("http://", "https://"))
    if not (is_local_stack(opts.stack_name) or remote_backend
            or any(env.get(v) for v in PASSPHRASE_VARS)):
        raise OptionError("stack", opts.stack_name, "a real stack needs your own passphrase "
                          "for its secrets: export PULUMI_CONFIG_PASSPHRASE=... (README, "
                          "'How pulumi runs here')")
    return warnings, settings


def _check_key(opts: DeployOptions, base_config: Mapping[str, object]) -> None:
    """The key we will log in with must be there and readable, and its .pub beside it."""
    if opts.ssh_key:
        private = readable_key(opts.ssh_key)
        if "sshPublicKey" not in opts.settings and not Path(f"{private}.pub").is_file():
            raise OptionError("--ssh-key", str(private),
                              f"no public key {private}.pub beside it to attach")
        return
    setting = opts.settings.get("sshPublicKey") or base_config.get("vast-gpu:sshPublicKey")
    pair = find_key_pair(setting if isinstance(setting, str) else None, Path.home() / ".ssh")
    try:
        pair.private_path.read_bytes()
    except OSError as exc:
        raise KeyPairError(f"cannot read the private key {pair.private_path} "
                           f"({exc.strerror})") from None


def plan(opts: DeployOptions) -> list[str]:
    """Every step deploy will take, in words (what --dry-run prints)."""
    base = f"config of stack {opts.base_stack!r}" if opts.base_stack else "no base stack"
    overrides = ", ".join(f"{k}={v!r}" for k, v in opts.settings.items()) or "none"
    steps = [
        f"create stack {opts.stack_name!r} from {base}; settings: {overrides}",
        "pulumi up: rent one instance and wait until SSH accepts the key",
    ]
    if not opts.no_sync:
        steps.append(f"sync {opts.src} ({opts.src_origin}) -> appDir")
    if opts.tasks:
        steps.append(f"run {len(opts.tasks)} task(s) as ./run-direct <line> in appDir")
        steps += [f"    {t.line}" for t in opts.tasks]
        if not opts.no_pull:
            steps.append(f"pull workDir -> {opts.pulled_dir}"
                         + (" after each task and at the end" if opts.pull_each else ""))
        lost = opts.on_lost or "resume for a bid stack, else stop"
        steps.append(f"if the instance is outbid or lost: destroy it, then {lost} (a new "
                     f"instance for the unfinished tasks; at most {opts.max_lost} times)")
    if opts.shell_only:
        steps.append("open an interactive shell in appDir (--shell without tasks: the "
                     "instance is kept afterwards)")
    elif opts.shell:
        steps.append("open an interactive shell in appDir; "
                     + ("the instance is kept" if opts.keep else
                        "the instance is destroyed when it ends (add --keep to keep it)"))
    if opts.keeps:
        steps.append(f"keep the instance; `inv down --stack {opts.stack_name}` destroys it")
    else:
        steps.append(f"pulumi destroy (verified) and remove stack {opts.stack_name!r}")
    return steps


def deploy(opts: DeployOptions, *, out: TextIO = sys.stdout) -> BatchResult | None:
    """Run the whole job; raises TasksFailed when a task failed (after teardown)."""
    out = safe(out)
    warnings, settings = preflight(opts)
    number = 0
    for step in plan(opts):
        if step.startswith("    "):
            say(f"deploy: {step}", out)
        else:
            number += 1
            say(f"deploy [{number}] {step}", out)
    for line in warnings:
        say(f"deploy: {line}", out)
    if opts.dry_run:
        for line in dry_run_estimate(opts, settings):
            say(f"deploy: {line}", out)
        say("deploy: dry run: nothing rented", out)
        return None
    with safe_std_streams(), signals_as_interrupt():
        return _run(opts, out)


def _run(opts: DeployOptions, out: TextIO) -> BatchResult | None:
    stack = Stack(opts.stack_name, verbose=opts.verbose, out=out)
    result: BatchResult | None = None
    report = RunReport("deploy", opts.job, stack.name, kept=opts.keeps)
    known: list[int] = []
    created = False  # never tear down a stack this run did not make: it may be a teammate's
    try:
        stack.create(f"its job name {opts.job!r} is taken (a teammate's job, or an earlier "
                     "--keep): pass another --job; nothing was rented")
        created = True
        _configure_stack(stack, opts)
        with report.phase("up"):
            stack.up()
        result = work(stack, opts, report, known, out)
        if opts.shell:
            outputs = parse_outputs(stack.name, stack.outputs())
            interactive_shell(target_for(outputs, outputs.pick(), ssh_key=opts.ssh_key),
                              outputs.app_dir)
    except BaseException as exc:
        if report.outcome == "ok":
            report.outcome = f"stopped: {type(exc).__name__}: {exc}".splitlines()[0]
        raise
    finally:
        try:
            if created and opts.keeps:
                _say_kept(stack.name, known, opts, out)
            elif created:
                with report.phase("destroy"):
                    unstoppable(lambda: teardown(stack, known, out), out)
        finally:
            report.save_and_print(opts.results_dir, out, "deploy: ")
    if result is not None and result.failed:
        raise TasksFailed(result.failed, len(result.results))
    return result


def _say_kept(stack: str, known: Sequence[int], opts: DeployOptions, out: TextIO) -> None:
    """--keep (or --shell alone): say what still bills and how to end it; `inv pull` of the
    stack continues this job."""
    remember_job(stack, opts.job, kept_by_deploy=True)
    if not known:
        say(f"deploy: kept stack {stack!r}: `inv down --stack {stack}` destroys what it holds",
            out)
        return
    ids = ", ".join(map(str, known))
    say(f"deploy: kept: instance {ids} of stack {stack!r} bills until you destroy it: "
        f"`make vast-destroy ID={known[0]}` or `inv down --stack {stack}`", out)


def _configure_stack(stack: Stack, opts: DeployOptions) -> None:
    if opts.base_stack:
        stack.capture("config", "cp", "--stack", opts.base_stack, "--dest", stack.name, stack=False)
    settings = dict(opts.settings)
    if not opts.no_sync and opts.src and "expectedSyncGB" not in settings:
        settings["expectedSyncGB"] = repr(sync_gb(opts.src))  # what sync will send, exactly
    if opts.ssh_key and "sshPublicKey" not in settings:  # attach the key we will log in with
        settings["sshPublicKey"] = str(Path(opts.ssh_key).expanduser()) + ".pub"
    for key, value in settings.items():
        stack.set_config(f"vast-gpu:{key}", value)


def sync_gb(src: Path) -> float:
    """GB a first sync of src sends: the size of every selected file (remote/sync.py)."""
    return gb(sum(f.size for f in select_files(src)))


def dry_run_estimate(opts: DeployOptions, settings: Settings) -> list[str]:
    """The offer a rent would choose now and its estimate: the provider's own selector
    (providers/offers.py) on a search, which is free and rents nothing."""
    upload = 0.0 if opts.no_sync or opts.src is None else (
        None if "expectedSyncGB" in opts.settings else sync_gb(opts.src))
    try:
        selection = selection_for(settings, sync_gb=upload)
    except SelectionError as exc:
        return [f"a real run would refuse to rent: {exc}"]
    return [*selection.notes, *summary(selection, settings)]
