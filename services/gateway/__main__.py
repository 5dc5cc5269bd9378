"""python -m services.gateway: serve the API until SIGTERM / SIGINT."""

from __future__ import annotations

import uvloop
from aiohttp import web

from shared.config import Settings
from shared.observability import setup_logging

from .app import make_app


def main() -> None:
    settings = Settings.from_env()
    setup_logging("gateway", settings.log_level)
    web.run_app(make_app(settings), host=settings.host, port=settings.port, access_log=None,
                print=None, loop=uvloop.new_event_loop(), shutdown_timeout=10)


if __name__ == "__main__":
    main()
