"""The console's static shell under /console: no key needed to load it, since every datum comes from /v1.

The shell is one HTML page, a stylesheet and a few ES modules, served from this package (no build step, no
CDN), so the console works offline and behind any firewall that lets the API through.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
# The page shows text that customers wrote: even if some of it slipped into markup, it could run no script
# and reach no other origin.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
                               " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
                               " form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The shell is tiny; always revalidate so an upgraded gateway never serves a stale page beside new JS.
    "Cache-Control": "no-cache",
}

routes = web.RouteTableDef()


@routes.get("/console")
@routes.get("/console/")
async def shell(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=HEADERS)


@routes.get("/console/assets/{path:.+}")
async def asset(request: web.Request) -> web.FileResponse:
    # Resolve and confine to the static folder: `..` or a symlink cannot reach any other file.
    path = (STATIC / request.match_info["path"]).resolve()
    if not path.is_relative_to(STATIC) or not path.is_file() or path.suffix not in (".js", ".css", ".svg"):
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers=HEADERS)
