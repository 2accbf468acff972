"""The Python half of the aiohttp_session interop test.

A small aiohttp app on aiohttp_session's RedisStorage, with the same JSON API
as the Rust demo (`cargo run -p session-examples --bin demo`), so that one
HTTP client can drive both against one redis-server and one cookie jar.

    python app.py --port 8081 --redis-url redis://127.0.0.1:6379 --max-age 3600

Prints "listening on <port>" once it serves.
"""

import argparse
import asyncio
import json

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp_session import get_session, setup
from aiohttp_session.redis_storage import RedisStorage


async def read_session(request: web.Request) -> web.Response:
    session = await get_session(request)
    return web.json_response({"new": session.new, "data": dict(session)})


async def put_key(request: web.Request) -> web.Response:
    session = await get_session(request)
    session[request.match_info["key"]] = await request.json()
    return web.json_response({"new": session.new, "data": dict(session)})


async def delete_key(request: web.Request) -> web.Response:
    session = await get_session(request)
    session.pop(request.match_info["key"], None)
    return web.json_response({"new": session.new, "data": dict(session)})


async def login(request: web.Request) -> web.Response:
    body = await request.json()
    session = await get_session(request)
    session["user"] = body["user"]
    return web.json_response({"user": body["user"]})


async def logout(request: web.Request) -> web.Response:
    session = await get_session(request)
    session.invalidate()
    return web.json_response({"user": None})


async def health(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--max-age", type=int, default=None)
    parser.add_argument("--cookie-name", default="AIOHTTP_SESSION")
    args = parser.parse_args()

    redis = aioredis.from_url(args.redis_url)
    app = web.Application()
    setup(
        app,
        RedisStorage(
            redis,
            cookie_name=args.cookie_name,
            max_age=args.max_age,
            httponly=True,
            samesite="Lax",
        ),
    )
    app.add_routes(
        [
            web.get("/api/session", read_session),
            web.put("/api/session/{key}", put_key),
            web.delete("/api/session/{key}", delete_key),
            web.post("/api/login", login),
            web.post("/api/logout", logout),
            web.get("/health", health),
        ]
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    print(f"listening on {args.port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
