"""Which SSH key pair we use: the stack's sshPublicKey and its private half, else the default.

The provider attaches the public key to the instance and must then log in with the private
half to know the machine is usable, so a public key without a private key we can read is an
error at `pulumi preview`, not a hang at `pulumi up`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from remote.errors import KeyPairError

DEFAULT_KEY_NAMES = ("id_ed25519", "id_rsa", "id_ecdsa", "id_dsa")
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-", "ssh-dss", "sk-")


@dataclass(frozen=True)
class KeyPair:
    public_key: str
    """One line, "ssh-ed25519 AAAA... comment"."""
    private_path: Path


def is_public_key(text: str) -> bool:
    return text.strip().startswith(KEY_TYPES) and "PRIVATE KEY" not in text


def find_key_pair(setting: str | None, ssh_dir: Path) -> KeyPair:
    """The pair named by `setting` (a .pub path, a private key path, or key text), else the
    first of ~/.ssh/id_ed25519, id_rsa, id_ecdsa, id_dsa that has both halves."""
    if setting:
        return _pair_for(setting.strip(), ssh_dir)
    looked = []
    for name in DEFAULT_KEY_NAMES:
        private, public = ssh_dir / name, ssh_dir / f"{name}.pub"
        looked.append(public)
        if private.is_file() and public.is_file():
            return KeyPair(_read_public(public), private)
    raise KeyPairError(
        "no SSH key pair found; create one with `ssh-keygen -t ed25519` or set "
        "vast-gpu:sshPublicKey", looked,
    )


def _pair_for(setting: str, ssh_dir: Path) -> KeyPair:
    if is_public_key(setting):
        text = " ".join(setting.split()[:3])
        candidates = sorted(ssh_dir.glob("*.pub")) if ssh_dir.is_dir() else []
        for pub in candidates:
            if _same_key(_read_public(pub), text) and pub.with_suffix("").is_file():
                return KeyPair(text, pub.with_suffix(""))
        raise KeyPairError(
            "vast-gpu:sshPublicKey is a key whose private half is not in "
            f"{ssh_dir}; give the path of the .pub file instead", candidates,
        )
    path = Path(setting).expanduser()
    public = path if path.suffix == ".pub" else path.with_name(path.name + ".pub")
    private = public.with_suffix("")
    if not public.is_file() or not private.is_file():
        raise KeyPairError(
            f"vast-gpu:sshPublicKey = {setting!r}: need both {private} and {public}",
            [private, public],
        )
    return KeyPair(_read_public(public), private)


def _read_public(path: Path) -> str:
    text = path.read_text().strip()
    if not is_public_key(text):
        raise KeyPairError(f"{path} does not hold an OpenSSH public key", [path])
    return text


def _same_key(a: str, b: str) -> bool:
    return a.split()[:2] == b.split()[:2]
