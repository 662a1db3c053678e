"""An interactive shell on the instance, through the system's OpenSSH client.

A terminal session needs a real tty, job control and the user's terminal settings; OpenSSH
does all of that, so we hand over to it with the same key and the same pinned host key file
(paramiko writes it in OpenSSH's format).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

from remote.errors import RemoteError
from remote.openssh import ssh_argv
from remote.ssh import Connection, Target


def interactive_shell(target: Target, app_dir: str) -> int:
    """Open a login shell in app_dir; returns the shell's exit code."""
    if shutil.which("ssh") is None:
        raise RemoteError("a shell needs the OpenSSH client: apt-get install openssh-client")
    with Connection(target) as conn:  # pins the key by the instance's rule (remote/ssh.py)
        conn.open()
    command = f"cd {shlex.quote(app_dir)} && exec \"${{SHELL:-/bin/bash}}\" -l"
    return subprocess.call(ssh_argv(target, command, tty=True))
