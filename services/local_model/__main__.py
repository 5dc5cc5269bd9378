"""Entry point: `python -m services.local_model` serves the offline model on 127.0.0.1 until SIGINT/SIGTERM.
Any model name is accepted and echoed; hooks in the name: `+delay<N>` ms per token, `+first<N>` ms before
the first token, `+error<status>` answers that HTTP status, `+hang` never answers (see hooks.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from shared.observability import setup_logging

from .app import LOGGER_NAME, make_app
from .config import MODEL_ID, LocalModelConfig, config_from_env

# Requests still running when the stop signal comes get this long before they are cancelled.
_SHUTDOWN_GRACE_S = 5.0


async def serve(config: LocalModelConfig) -> None:
    setup_logging("local_model", config.log_level)
    log = logging.getLogger(LOGGER_NAME)
    runner = web.AppRunner(make_app(config), access_log=None, shutdown_timeout=_SHUTDOWN_GRACE_S)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}/v1"
    log.info(
        "threadlog offline model listening: deterministic canned replies, not a real LLM",
        extra={"url": url, "model": MODEL_ID, "port": port},
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("offline model stopping")
    finally:
        await runner.cleanup()
    log.info("offline model stopped")


def main() -> int:
    try:
        config = config_from_env(os.environ)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
