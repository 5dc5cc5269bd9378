"""The parent's side of the separate processes: the load generator and the baseline server."""

from __future__ import annotations

import contextlib
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import msgspec

from threadlog.devenv import free_port

from .loadgen import HttpResult, HttpSpec, SseResult, SseSpec
from .machine import CpuMeter

SDK_HEADERS = {"Content-Type": "application/json", "OpenAI-Beta": "assistants=v2", "User-Agent": "bench/1"}


def auth_headers(api_key: str) -> dict[str, str]:
    return {**SDK_HEADERS, "Authorization": f"Bearer {api_key}"}


def _loadgen() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bench.loadgen"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parent.parent)


def http_load(spec: HttpSpec, cpu_of: dict[str, int] | None = None) -> HttpResult:
    """Run the load; with `cpu_of` (name -> pid), also the CPU ms per request each of those processes spent."""
    meter = CpuMeter(cpu_of or {})
    process = _loadgen()
    try:
        out, _ = process.communicate(msgspec.json.encode(spec), timeout=spec.warmup_s + spec.duration_s + 120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed ({process.returncode})")
    result = msgspec.json.decode(out.splitlines()[-1], type=HttpResult)
    result.cpu_ms_per_request = {name: round(1000 * s / max(result.sent, 1), 3) for name, s in meter.stop().items()}
    return result


class SseLoad:
    """SSE clients in their own process: wait until every one is attached, then until all streams end."""

    def __init__(self, spec: SseSpec) -> None:
        self.spec = spec
        self.started = time.time()
        self.process = _loadgen()
        self._lines: queue.Queue[bytes] = queue.Queue()
        stdin: IO[bytes] | None = self.process.stdin
        assert stdin is not None
        stdin.write(msgspec.json.encode(spec))
        stdin.close()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            self._lines.put(line)
        self._lines.put(b"")

    def _line(self, timeout_s: float) -> bytes:
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"no word from the load generator in {timeout_s:.0f}s") from None
        if not line:
            raise RuntimeError(f"load generator exited ({self.process.wait(10)}) early")
        return line

    def wait_attached(self) -> tuple[float, int]:
        """Wall time at which the last client attached, and how many did."""
        value = msgspec.json.decode(self._line(self.spec.attach_timeout_s + 30), type=Attached)
        return value.t, value.clients

    def result(self) -> SseResult:
        return msgspec.json.decode(self._line(self.spec.timeout_s + 60), type=SseResult)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class Attached(msgspec.Struct):
    type: str
    t: float
    clients: int


def sse_load(spec: SseSpec) -> SseResult:
    load = SseLoad(spec)
    try:
        load.wait_attached()
        return load.result()
    finally:
        load.close()


class Server(msgspec.Struct, frozen=True):
    url: str
    pid: int


@contextlib.contextmanager
def baseline_server(dsn: str, log_dir: Path) -> Iterator[Server]:
    """The bare aiohttp + asyncpg server of bench/baseline_server.py."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "baseline_server.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "bench.baseline_server", "--port", str(port), "--dsn", dsn],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                        break
                except (urllib.error.URLError, OSError):
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"baseline server did not start; see {log_dir}") from None
                    time.sleep(0.05)
            yield Server(f"http://127.0.0.1:{port}", process.pid)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
