"""The one place that defines how `pulumi` runs for this project: offline and project-local.

make, invoke, the tests and a hand-typed shell all take their environment from here, so a
`pulumi` typed by hand behaves like the one the tests run. tools/pulumi_env.py prints its
`export` lines for a shell: `eval "$(.venv/bin/python tools/pulumi_env.py --stack local)"`.

What it sets, and what a user's own setting overrides:
- PATH: the CLI built by tools/build-pulumi.sh (`.tools/pulumi/bin`) first, when it exists.
- PULUMI_BACKEND_URL: a file backend in the git-ignored `.pulumi-state/` of the repo, unless
  the user set one. A team shares one: `postgres://user@host:5432/db?sslmode=require` (password
  in PGPASSWORD or ~/.pgpass), `s3://bucket?endpoint=http://minio:9000&use_path_style=true&
  region=us-east-1` for MinIO (or plain `s3://bucket` on S3), or `https://api.pulumi.com`;
  README "For a team".
- PULUMI_HOME: the git-ignored `.pulumi-home/` of the repo, unless set.
- update checks and plugin downloads off; credentials stored in plain files.

What it set is listed in MARK (VAST_GPU_PULUMI_ENV), and only what the user has not changed
since is taken back: the next eval (say `--stack local`, then `--stack my-exp`) unsets the
fixed passphrase it no longer wants, and a task run from that shell does not inherit it
either, so a real stack never gets the local one.

Passphrase rule: the stacks in LOCAL_STACKS (vastsim, the demo) and the tests' throwaway stacks
(prefix TEST_STACK_PREFIX) hold no real secret, so they get the fixed LOCAL_PASSPHRASE. Every
other stack uses the user's own PULUMI_CONFIG_PASSPHRASE / PULUMI_CONFIG_PASSPHRASE_FILE or the
secrets provider of their backend; without one, pulumi stops and says so. On a team backend
the team shares that passphrase the way it shares the database password.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = ROOT / ".tools" / "pulumi" / "bin"
STATE_DIR = ROOT / ".pulumi-state"
HOME_DIR = ROOT / ".pulumi-home"

LOCAL_STACKS = frozenset({"local", "demo"})
TEST_STACK_PREFIX = "test-"
DEPLOY_LOCAL_PREFIX = "local-"
# Protects nothing on purpose: local stacks hold no secret.
LOCAL_PASSPHRASE = "vast-gpu-local-only"
MARK = "VAST_GPU_PULUMI_ENV"
"""Names of the variables an eval of this script set, space-separated."""

OFFLINE = {
    "PULUMI_SKIP_UPDATE_CHECK": "true",
    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    "PULUMI_CREDENTIAL_STORE": "plaintext",
}


def is_local_stack(stack: str | None) -> bool:
    """True for stacks that target vastsim and so may use the fixed passphrase."""
    if not stack:
        return False
    return (
        stack in LOCAL_STACKS
        or stack.startswith(TEST_STACK_PREFIX)
        or stack.startswith(DEPLOY_LOCAL_PREFIX)
    )


def _our_value(name: str) -> str | None:
    """What we set `name` to (PATH aside), None for names we never set."""
    return {"PULUMI_BACKEND_URL": STATE_DIR.as_uri(), "PULUMI_HOME": str(HOME_DIR),
            "PULUMI_CONFIG_PASSPHRASE": LOCAL_PASSPHRASE, **OFFLINE}.get(name)


def users_own(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without what an earlier eval of this script set (MARK) and nobody changed since."""
    out = dict(env)
    for name in out.pop(MARK, "").split():
        if name == "PATH":
            first, _, rest = out.get("PATH", "").partition(os.pathsep)
            if first == str(TOOLS_BIN):
                out["PATH"] = rest
        elif name in out and out[name] == _our_value(name):
            del out[name]
    return out


def pulumi_env(stack: str | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to run `pulumi` with: the user's own part of `base` (default
    os.environ) plus our settings."""
    env = users_own(os.environ if base is None else base)
    if TOOLS_BIN.is_dir():
        env["PATH"] = f"{TOOLS_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PULUMI_BACKEND_URL", STATE_DIR.as_uri())
    env.setdefault("PULUMI_HOME", str(HOME_DIR))
    env.update(OFFLINE)
    has_passphrase = "PULUMI_CONFIG_PASSPHRASE" in env or "PULUMI_CONFIG_PASSPHRASE_FILE" in env
    if is_local_stack(stack) and not has_passphrase:
        env["PULUMI_CONFIG_PASSPHRASE"] = LOCAL_PASSPHRASE
    if env["PULUMI_BACKEND_URL"] == STATE_DIR.as_uri():
        STATE_DIR.mkdir(exist_ok=True)
    return env


def shell_exports(stack: str | None = None, current: Mapping[str, str] | None = None) -> str:
    """`export` lines for what pulumi_env() adds or changes, MARK listing them, and `unset`
    lines for what an earlier eval set that this stack must not have."""
    current = dict(os.environ if current is None else current)
    own = users_own(current)
    env = pulumi_env(stack, own)
    ours = sorted(k for k, v in env.items() if own.get(k) != v)
    lines = [f"unset {k}" for k in sorted(set(current) - set(env) - {MARK})]
    lines += [f"export {k}={shlex.quote(env[k])}" for k in ours if current.get(k) != env[k]]
    lines.append(f"export {MARK}={shlex.quote(' '.join(ours))}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Print the shell exports that make `pulumi` run offline and project-local.",
        epilog='Use: eval "$(.venv/bin/python tools/pulumi_env.py --stack local)"',
    )
    parser.add_argument(
        "--stack",
        help="stack you will work on; local stacks (local, demo, test-*, local-*) get the fixed "
        "passphrase, others need your own PULUMI_CONFIG_PASSPHRASE",
    )
    exports = shell_exports(parser.parse_args().stack)
    try:
        print(exports, flush=True)
    except BrokenPipeError:  # `| head`: the reader took what it wanted; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
