"""Every error the remote package raises on purpose, in one tree.

paramiko's and socket's exceptions are converted in remote/ssh.py and nowhere else::

    RemoteError
    ├── KeyPairError       no usable SSH key pair: .looked_in
    └── SshError           talking to the instance failed: .host .port
        ├── ConnectError   refused, reset, timed out, after the retries: .attempts
        └── AuthRefused    the server refused our key: .key_path
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class RemoteError(Exception):
    """Base of everything the remote package raises on purpose."""


class KeyPairError(RemoteError):
    """No SSH key pair we can use; ``looked_in`` lists every place tried."""

    def __init__(self, reason: str, looked_in: Sequence[Path | str] = ()) -> None:
        self.looked_in = tuple(str(p) for p in looked_in)
        text = reason
        if self.looked_in:
            text += "; looked in: " + ", ".join(self.looked_in)
        super().__init__(text)


class SshError(RemoteError):
    """Talking to host:port over SSH failed."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        super().__init__(f"ssh {host}:{port}: {reason}")


class ConnectError(SshError):
    """No SSH session could be opened (refused, reset, timeout, bad banner)."""


class AuthRefused(SshError):
    """The server answered but refused our key."""
