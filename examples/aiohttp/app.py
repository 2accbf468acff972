"""The Python half of the aiohttp_session interop test.

A small aiohttp app on one of aiohttp_session's storages, with the same JSON
API as the Rust demo (`cargo run -p session-examples --bin demo`), so that one
HTTP client with one cookie jar can drive both:

    python app.py --port 8081 --storage redis --redis-url redis://127.0.0.1:6379 --max-age 3600
    python app.py --port 8081 --storage encrypted --secret BASE64URL --max-age 3600
    python app.py --port 8081 --storage encrypted --secret BASE64URL --fernet-key-string
    python app.py --port 8081 --storage nacl --secret BASE64URL --max-age 3600
    python app.py --port 8081 --storage simple --max-age 3600

`--secret` is the 32-byte secret as `base64.urlsafe_b64encode` prints it
(the demo's `--key`); give it as `--secret=...` when it starts with `-`
(one key in 64), which argparse would otherwise take for an option.
EncryptedCookieStorage gets the 32 bytes, or with `--fernet-key-string` the
Fernet key string itself: aiohttp_session accepts both. Prints "listening
on <port>" once it serves.
"""

import argparse
import asyncio
import base64
import json

from aiohttp import web
from aiohttp_session import SimpleCookieStorage, get_session, setup


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
    parser.add_argument(
        "--storage", choices=["redis", "encrypted", "nacl", "simple"], default="redis"
    )
    parser.add_argument("--redis-url")
    parser.add_argument("--secret")
    parser.add_argument("--fernet-key-string", action="store_true")
    parser.add_argument("--max-age", type=int, default=None)
    parser.add_argument("--cookie-name", default="AIOHTTP_SESSION")
    args = parser.parse_args()

    options = dict(
        cookie_name=args.cookie_name,
        max_age=args.max_age,
        httponly=True,
        samesite="Lax",
    )
    redis = None
    if args.storage == "redis":
        import redis.asyncio as aioredis
        from aiohttp_session.redis_storage import RedisStorage

        redis = aioredis.from_url(args.redis_url)
        storage = RedisStorage(redis, **options)
    elif args.storage == "encrypted":
        from aiohttp_session.cookie_storage import EncryptedCookieStorage

        secret = args.secret if args.fernet_key_string else base64.urlsafe_b64decode(args.secret)
        storage = EncryptedCookieStorage(secret, **options)
    elif args.storage == "nacl":
        from aiohttp_session.nacl_storage import NaClCookieStorage

        storage = NaClCookieStorage(base64.urlsafe_b64decode(args.secret), **options)
    else:
        storage = SimpleCookieStorage(**options)

    app = web.Application()
    setup(app, storage)
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
        if redis is not None:
            await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
