"""Starts and supervises threadlog's processes: gateway, projector, run-worker(s) and the offline model.

Used by `threadlog run` and by the tests (which kill and restart processes to inject faults).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from .devenv import free_port

OFFLINE_MODEL_KEY = "offline-model-no-key-needed"


class Service:
    """One child process, restartable, with its own log file."""

    def __init__(self, name: str, module: str, env: Mapping[str, str], log_dir: Path, probe_port: int | None) -> None:
        self.name = name
        self.module = module
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.probe_port = probe_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 (kept open for the child's lifetime)
        self.process = subprocess.Popen([sys.executable, "-m", self.module], env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as a crash."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self, grace_s: float = 10.0) -> None:
        if not self.alive:
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def wait_ready(self, timeout_s: float = 30.0, path: str = "/readyz") -> None:
        if self.probe_port is None:
            return
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.probe_port}{path}"
        while True:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout_s}s; see {self.log_path}:\n{self.tail()}")
            time.sleep(0.05)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Stack:
    """The whole service: the processes `make run` starts, wired by environment variables."""

    def __init__(self, *, database_url: str, nats_url: str, log_dir: Path, api_key: str, port: int | None = None,
                 nats_prefix: str = "threadlog", workers: int = 1, projectors: int = 1,
                 openai_base_url: str | None = None,
                 openai_api_key: str | None = None, extra_env: Mapping[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.api_key = api_key
        self.log_dir = log_dir
        base = {k: v for k, v in os.environ.items() if not k.startswith(("THREADLOG_", "OPENAI_"))}
        base.update({
            "DATABASE_URL": database_url, "NATS_URL": nats_url, "THREADLOG_NATS_PREFIX": nats_prefix,
            "THREADLOG_API_KEY": api_key, "PYTHONUNBUFFERED": "1",
            # Every process must agree on the partitioning: gateways and workers wait on the right checkpoint.
            "THREADLOG_PROJECTOR_PARTITIONS": str(projectors),
        })
        self.local_model: Service | None = None
        if openai_api_key:
            base["OPENAI_API_KEY"] = openai_api_key
            if openai_base_url:
                base["OPENAI_BASE_URL"] = openai_base_url
        else:
            model_port = free_port()
            self.local_model = Service("local_model", "services.local_model",
                                       {**base, "THREADLOG_LOCAL_MODEL_PORT": str(model_port)}, log_dir, model_port)
            base["OPENAI_BASE_URL"] = f"http://127.0.0.1:{model_port}/v1"
            base["OPENAI_API_KEY"] = OFFLINE_MODEL_KEY
        base.update(extra_env or {})
        self.env = base
        self.gateway = Service("gateway", "services.gateway", {**base, "THREADLOG_PORT": str(self.port)}, log_dir,
                               self.port)
        self.extra_gateways: list[Service] = []
        self.projectors = [self._projector(i) for i in range(projectors)]
        self.projector = self.projectors[0]
        self.workers = [self._worker(i) for i in range(workers)]

    def _projector(self, index: int) -> Service:
        port = free_port()
        name = "projector" if index == 0 else f"projector-{index}"
        return Service(name, "services.projector", {**self.env, "THREADLOG_PROJECTOR_PORT": str(port),
                                                    "THREADLOG_PROJECTOR_PARTITION": str(index)}, self.log_dir, port)

    def _worker(self, index: int) -> Service:
        port = free_port()
        return Service(f"run_worker-{index}", "services.run_worker",
                       {**self.env, "THREADLOG_WORKER_PORT": str(port)}, self.log_dir, port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def services(self) -> list[Service]:
        head = [self.local_model] if self.local_model else []
        return [*head, self.gateway, *self.extra_gateways, *self.projectors, *self.workers]

    def add_gateway(self) -> Service:
        """Another gateway process on its own port, sharing everything else (as behind a load balancer)."""
        port = free_port()
        gateway = Service(f"gateway-{len(self.extra_gateways) + 1}", "services.gateway",
                          {**self.env, "THREADLOG_PORT": str(port)}, self.log_dir, port)
        self.extra_gateways.append(gateway)
        gateway.start()
        gateway.wait_ready()
        return gateway

    def start(self) -> None:
        for service in self.services:
            service.start()
        for service in self.services:
            service.wait_ready(path="/healthz" if service is self.local_model else "/readyz")

    def add_worker(self) -> Service:
        worker = self._worker(len(self.workers))
        self.workers.append(worker)
        worker.start()
        worker.wait_ready()
        return worker

    def stop(self) -> None:
        for service in reversed(self.services):
            service.signal(signal.SIGTERM)
        for service in reversed(self.services):
            service.stop()
