"""A real PostgreSQL server for tests and benches: Debian's binaries, a temp dir, loopback TCP.

initdb makes a cluster in a fresh directory under /tmp; the server listens on 127.0.0.1 at a
free port (and a unix socket in the same directory) with password logins only (fsync off
unless asked), and `stop()` shuts it down and removes everything. PostgreSQL refuses to run
as root, so as root every server command runs as `nobody` through `setpriv` (util-linux), in a
directory only it owns.
`database()` makes what README's "For a team" asks an admin to make: a login role and a
database it owns, and returns the URL the team exports as PULUMI_BACKEND_URL.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
NOBODY_UID = NOBODY_GID = 65534
START_TIMEOUT_S = 60


class PgMissing(RuntimeError):
    """No PostgreSQL server binaries here: install Debian's `postgresql` package."""


def bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<major>/bin with initdb (Debian's layout)."""
    found = sorted((p.parent for p in PG_ROOT.glob("*/bin/initdb")),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if found:
        return found[-1]
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PgMissing(f"no initdb under {PG_ROOT}/*/bin or on PATH: apt-get install postgresql")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, *, fsync: bool = False) -> None:
        """fsync off by default: tests need no durability; a bench can ask for a real one."""
        self.fsync = fsync
        self.bin = bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="vast-gpu-pg-"))
        self.data = self.dir / "data"
        self.password = secrets.token_hex(12)
        self.port = 0
        self.as_root = os.geteuid() == 0
        if self.as_root:
            os.chown(self.dir, NOBODY_UID, NOBODY_GID)
        self.dir.chmod(0o700)

    def _server_cmd(self, *argv: str) -> list[str]:
        if not self.as_root:
            return list(argv)
        return ["setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_GID}", "--clear-groups",
                "--", *argv]

    def _run(self, *argv: str) -> str:
        proc = subprocess.run(self._server_cmd(*argv), capture_output=True, text=True,
                              env={**os.environ, "HOME": str(self.dir)}, timeout=START_TIMEOUT_S)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}"
                               f"{proc.stderr}")
        return proc.stdout

    def start(self) -> PgServer:
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self.as_root:
            os.chown(pwfile, NOBODY_UID, NOBODY_GID)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                  "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-instructions")
        pwfile.unlink()
        self.port = _free_port()
        options = (f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c fsync={'on' if self.fsync else 'off'}")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
                  "-o", options, "-w", "-t", str(START_TIMEOUT_S), "start")
        return self

    def stop(self) -> None:
        if self.port and (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- as a client ----------------------------------------------------------------------

    def client_env(self, user: str = SUPERUSER, password: str | None = None) -> dict[str, str]:
        return {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(self.port), "PGUSER": user,
                "PGPASSWORD": password or self.password}

    def sql(self, statement: str, database: str = "postgres") -> str:
        proc = subprocess.run(
            [str(self.bin / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", database,
             "-c", statement], env=self.client_env(), capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"psql: {statement!r}: {proc.stderr}")
        return proc.stdout

    def database(self, name: str) -> str:
        """A login role and a database of that name it owns; the backend URL for them."""
        password = secrets.token_hex(12)
        self.sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        self.sql(f"CREATE DATABASE {name} OWNER {name}")
        return f"postgres://{name}:{password}@127.0.0.1:{self.port}/{name}?sslmode=disable"

    def dump(self, database: str) -> str:
        """`pg_dump` of the database, data included, as SQL text."""
        proc = subprocess.run([str(self.bin / "pg_dump"), "-d", database],
                              env=self.client_env(), capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"pg_dump {database}: {proc.stderr}")
        return proc.stdout
