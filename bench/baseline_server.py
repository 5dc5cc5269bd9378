"""The physical-limit baseline, run as its own process: a bare aiohttp app on uvloop doing the least work the
same request could cost (as in shared/baselines.md), against the same PostgreSQL.

    python -m bench.baseline_server --port P --dsn URL

- `POST /events/{stream}`: decode the JSON body (msgspec), one autocommit INSERT ... RETURNING id.
- `GET /messages/{thread_id}`: the indexed SELECT of 20 rows a message list needs, from threadlog's own
  `messages` read model (when the database has one), returned as a list body.
- `GET /sse?n=1000`: n small events (`id:`/`event:`/`data:`), one write each, then `done`.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import uvloop
from aiohttp import web

TABLE = """CREATE TABLE IF NOT EXISTS bench_events (id bigserial PRIMARY KEY, stream_id text NOT NULL,
  version int NOT NULL, type text NOT NULL, data jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (stream_id, version))"""
INSERT = "INSERT INTO bench_events (stream_id, version, type, data) VALUES ($1, $2, $3, $4) RETURNING id"
SELECT_PAGE = "SELECT message_id, body::text FROM messages WHERE thread_id = $1 ORDER BY seq DESC LIMIT 21"

POOL = web.AppKey("pool", asyncpg.Pool)


class Body(msgspec.Struct):
    role: str
    content: str


DECODER = msgspec.json.Decoder(Body)
ENCODER = msgspec.json.Encoder()
VERSIONS = itertools.count(1)


async def append(request: web.Request) -> web.Response:
    body = DECODER.decode(await request.read())
    data = ENCODER.encode({"role": body.role, "content": body.content}).decode()
    position = await request.app[POOL].fetchval(INSERT, request.match_info["stream"], next(VERSIONS),
                                                "thread.message.created", data)
    return web.Response(body=ENCODER.encode({"id": position}), content_type="application/json")


async def messages(request: web.Request) -> web.Response:
    rows = await request.app[POOL].fetch(SELECT_PAGE, request.match_info["thread_id"])
    page = rows[:20]
    body = (b'{"object":"list","data":[' + b",".join(r[1].encode() for r in page) + b'],"first_id":'
            + ENCODER.encode(page[0][0] if page else None) + b',"last_id":'
            + ENCODER.encode(page[-1][0] if page else None) + b',"has_more":'
            + (b"true" if len(rows) > 20 else b"false") + b"}")
    return web.Response(body=body, content_type="application/json")


async def sse(request: web.Request) -> web.StreamResponse:
    n = int(request.query.get("n", "1000"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    for i in range(n):
        await response.write(b"id: %d\nevent: tick\ndata: {\"seq\":%d,\"text\":\"hello world\"}\n\n" % (i, i))
    await response.write(b"event: done\ndata: [DONE]\n\n")
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_app(dsn: str) -> web.Application:
    async def database(app: web.Application) -> AsyncIterator[None]:
        async with asyncpg.create_pool(dsn, min_size=16, max_size=16) as pool:
            await pool.execute(TABLE)
            app[POOL] = pool
            yield

    app = web.Application()
    app.cleanup_ctx.append(database)
    app.router.add_post("/events/{stream}", append)
    app.router.add_get("/messages/{thread_id}", messages)
    app.router.add_get("/sse", sse)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    args = parser.parse_args()
    web.run_app(make_app(args.dsn), host="127.0.0.1", port=args.port, access_log=None, print=None,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
