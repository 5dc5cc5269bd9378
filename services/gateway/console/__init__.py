"""The operator console at /console: threads, a thread's conversation and audit trail, usage, and actions.

`routes` registers the static shell (pages) and the console's read API under /v1/console (api).
"""

from __future__ import annotations

from aiohttp import web

from . import api, pages

routes: list[web.AbstractRouteDef] = [*pages.routes, *api.routes]
