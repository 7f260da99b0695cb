"""Pages for people: the live board, the department inbox, and the board's event stream (SSE)."""
from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import timedelta
from pathlib import Path

import orjson
from aiohttp import web as aioweb
from faust import web

from handlers.permissions import TICKET_ACTIONS, Can, may
from schemas.accounts import UserRole
from schemas.records import Ticket, TicketAction
from streams.http.api import SESSION_COOKIE, ApiError, JsonView, Principal, bearer_token, caller_of

log = logging.getLogger("soc.board")

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
STATIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
KEEPALIVE_S = 15.0
MAX_STREAMS_PER_CALLER = 8
MAX_STREAMS = 40
READ_BLOCK_S = 3.0
RECENTLY_CLOSED = timedelta(hours=1)


def _static(name: str) -> aioweb.Response:
    # Names of the shipped files only: a NUL or a 300-character name never reaches the file system.
    if not STATIC_NAME.fullmatch(name):
        return aioweb.json_response({"error": "no such file"}, status=404)
    path = (STATIC / name).resolve()
    if path.parent != STATIC.resolve() or path.suffix not in CONTENT_TYPES or not path.is_file():
        return aioweb.json_response({"error": f"no file {name}"}, status=404)
    return aioweb.Response(body=path.read_bytes(), content_type=CONTENT_TYPES[path.suffix], charset="utf-8",
                           headers={"Cache-Control": "no-cache"})


class BoardPage(web.View):
    async def get(self, request: web.Request) -> aioweb.Response:
        return _static("board.html")


class InboxPage(web.View):
    async def get(self, request: web.Request) -> aioweb.Response:
        return _static("inbox.html")


class StaticFile(web.View):
    async def get(self, request: web.Request, name: str) -> aioweb.Response:
        return _static(name)


class District(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        return await self.guarded(self._get, request)

    async def _get(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        district = self.http.config.district
        return self.json({
            "department": who.department,
            "read_only": who.credential == "wall",
            # Who is signed in, and what the page may offer them.
            "user": who.actor.model_dump(mode="json"),
            "community": who.community,
            "reads_all": who.reads_all,
            "actions": sorted(a.value for a in _actions(who, district)) if who.credential != "wall" else [],
            # The page's other controls (silences, the response level, sites): handlers/permissions.py's names.
            "capabilities": sorted(c.name for c in Can if may(who.role, c)) if who.credential != "wall" else [],
            "csrf": who.csrf,
            "name": district.name,
            "timezone": district.timezone,
            "communities": {cid: {"name": c.name, "polygon": [list(p) for p in c.polygon]}
                            for cid, c in district.communities.items()},
            "departments": {did: {"name": d.name, "name_en": d.name_en} for did, d in district.departments.items()},
        })


def _actions(who: Principal, district) -> frozenset[TicketAction]:
    actions = TICKET_ACTIONS[who.role]
    if who.role is UserRole.supervisor and not district.sign_in.supervisors_decide_extensions:
        actions = actions - {TicketAction.extend_decision}
    return actions


def _sse(event: str | None, data: bytes, event_id: str | None = None) -> bytes:
    head = b""
    if event_id:
        head += b"id: " + event_id.encode() + b"\n"
    if event:
        head += b"event: " + event.encode() + b"\n"
    return head + b"data: " + data + b"\n\n"


async def _snapshot(http, who: Principal) -> list[Ticket]:
    """Open tickets plus those closed in the last hour that `who` may see: what a fresh board should show."""
    since = http.clock() - RECENTLY_CLOSED
    tickets = await http.store.many(await http.store.open_or_closed_since(since))
    return [t for t in tickets if (t.is_open or (t.closed_at and t.closed_at >= since)) and who.can_see(t)]


class AlertStream(JsonView):
    async def get(self, request: web.Request):
        # EventSource cannot send headers: the board passes its token as ?token= on this route only.
        if "Authorization" not in request.headers and request.query.get("token"):
            request = request.clone(headers={**request.headers, "Authorization": f"Bearer {request.query['token']}"})
        try:
            who = await self.http.authenticate(request)
            who.require(Can.watch_board)
        except ApiError as exc:
            return self.json({"error": exc.error}, status=exc.code)
        # Each stream holds a Redis connection in a blocking read: bounded per caller and in all, so
        # streams never take the connections the pipeline's writes need (200 of them once did).
        caller = caller_of(request)
        open_streams = self.http.open_streams
        if open_streams[caller] >= MAX_STREAMS_PER_CALLER or sum(open_streams.values()) >= MAX_STREAMS:
            return self.json({"error": "too many open board streams; close a board first"}, status=429,
                             headers={"Retry-After": "10"})
        open_streams[caller] += 1
        try:
            return await self._stream(request, who)
        finally:
            open_streams[caller] -= 1
            if not open_streams[caller]:
                del open_streams[caller]

    async def _stream(self, request, who: Principal):
        response = aioweb.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                                  "X-Accel-Buffering": "no"})
        await response.prepare(request)
        board = self.http.store.key("board")
        last_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
        try:
            if last_id and not await self._still_there(board, last_id):
                last_id = None  # trimmed away: start over with a snapshot
            if not last_id:
                newest = await self.http.store.redis.xrevrange(board, count=1)
                last_id = newest[0][0].decode() if newest else "0-0"
                tickets = await _snapshot(self.http, who)
                payload = orjson.dumps([t.model_dump(mode="json") for t in tickets])
                await response.write(_sse("snapshot", payload, last_id))
            quiet_since = time.monotonic()
            while True:
                # Shorter than the Redis client's 5 s socket timeout, which a longer block would hit
                # (the stream then failed and the board showed "reconnecting" every few seconds).
                entries = await self.http.store.redis.xread({board: last_id}, count=200, block=int(READ_BLOCK_S * 1000))
                if not entries:
                    if time.monotonic() - quiet_since >= KEEPALIVE_S:
                        # A signed-out or expired session, a revoked token or a disabled user ends its
                        # streams (a session's idle clock is not restarted by it).
                        if not await self._still_signed_in(request, who):
                            break
                        await response.write(b": keepalive\n\n")
                        quiet_since = time.monotonic()
                    continue
                quiet_since = time.monotonic()
                for entry_id, fields in entries[0][1]:
                    last_id = entry_id.decode()
                    if not who.reads_all and not who.can_see(Ticket.model_validate_json(fields[b"json"])):
                        continue
                    data = b'{"kind":' + orjson.dumps(fields[b"kind"].decode()) + b',"ticket":' + fields[b"json"] + b"}"
                    await response.write(_sse("ticket", data, last_id))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("board stream failed")
        return response

    async def _still_signed_in(self, request, who: Principal) -> bool:
        if who.credential == "session":
            return await self.http.accounts.alive(request.cookies.get(SESSION_COOKIE, ""))
        if who.credential == "token":
            return await self.http.accounts.token_user(bearer_token(request) or "") is not None
        return True  # the environment's tokens last as long as the worker

    async def _still_there(self, board: str, last_id: str) -> bool:
        try:
            oldest = await self.http.store.redis.xrange(board, count=1)
        except Exception:
            return False
        if not oldest:
            return False
        try:
            ms, _, seq = last_id.partition("-")
            oms, _, oseq = oldest[0][0].decode().partition("-")
            return (int(ms), int(seq or 0)) >= (int(oms), int(oseq or 0))
        except ValueError:
            return False


# On every response: the pages load only their own scripts, styles and data, and nothing frames them.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@aioweb.middleware
async def json_errors(request, handler):
    """Paths no route matches (an id with a brace, a wrong method) answer in JSON too, and an error no
    view caught is logged and answered in JSON, not as aiohttp's text page."""
    try:
        response = await handler(request)
    except aioweb.HTTPException as exc:
        if exc.status < 400:
            raise
        response = aioweb.json_response({"error": exc.reason}, status=exc.status)
    except Exception:
        log.exception("request failed", extra={"path": request.path[:200]})
        response = aioweb.json_response({"error": "internal error"}, status=500)
    if not response.prepared:  # a stream has sent its headers already
        response.headers.update(SECURITY_HEADERS)
    return response


ROUTES = [
    ("/", "board", BoardPage),
    ("/inbox", "inbox", InboxPage),
    ("/static/{name}", "static", StaticFile),
    ("/api/district", "district", District),
    ("/api/alerts/stream", "alerts-stream", AlertStream),
]
