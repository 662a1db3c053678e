"""The system OpenSSH client, logged in exactly as Connection logs in.

Bulk streams (sync's tar, pull, rsync's -e) and the interactive shell go through OpenSSH when
it is installed: its C crypto moves data faster than paramiko, and a terminal needs a real
client. Same key only, no user ssh config, the host key pinned in the file paramiko writes
(`[host]:port type key`, which OpenSSH reads), never a prompt.
"""

from __future__ import annotations

import shlex

from remote.ssh import Target

SSH_PROGRAM = "ssh"
CIPHERS = "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr"
"""AES-GCM first: with hardware AES it is the fastest."""


def ssh_options(target: Target, *, accept_new: bool = False) -> list[str]:
    """Options shared by ssh, scp and rsync's -e. `accept_new` pins a first key (the shell may
    be the first contact); otherwise the key must already be pinned by Connection."""
    known = str(target.known_hosts)
    if any(c.isspace() for c in known):  # ssh splits this option's value on whitespace
        known = f'"{known}"'
    return [
        "-F", "/dev/null", "-i", str(target.key_path), "-c", CIPHERS,
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"StrictHostKeyChecking={'accept-new' if accept_new else 'yes'}",
        "-o", "UpdateHostKeys=no", "-o", "ConnectTimeout=15",
        "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR",
    ]


def ssh_argv(
    target: Target, command: str | None = None, *, tty: bool = False, accept_new: bool = False
) -> list[str]:
    """`ssh ... host [command]`; with tty for an interactive session."""
    argv = [SSH_PROGRAM, *ssh_options(target, accept_new=accept_new),
            "-p", str(target.port), "-l", target.user, *(["-t"] if tty else ["-T", "-x"]),
            target.host]
    return [*argv, command] if command else argv


def rsync_rsh(target: Target) -> str:
    """The value of rsync's -e: ssh with our options (rsync adds the host itself)."""
    return shlex.join([SSH_PROGRAM, *ssh_options(target), "-p", str(target.port),
                       "-l", target.user])
