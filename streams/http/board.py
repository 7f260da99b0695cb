"""Pages for people: the live board, the department inbox, and the board's event stream (SSE)."""
from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import orjson
from aiohttp import web as aioweb
from faust import web
from redis.exceptions import RedisError

from handlers.permissions import TICKET_ACTIONS, Can, may
from schemas.accounts import UserRole
from schemas.records import Ticket, TicketAction
from streams.http import pages
from streams.http.api import SESSION_COOKIE, ApiError, HttpView, JsonView, Principal, bearer_token
from streams.http.board_hub import READ_COUNT, ZERO, EntryId, Holder, Refused, Subscriber, board_entry, sse

log = logging.getLogger("soc.board")

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
                 ".webmanifest": "application/manifest+json"}
STATIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
KEEPALIVE_S = 15.0
# A write a client has not taken this long ends its stream (a board that stopped reading holds no slot).
WRITE_TIMEOUT_S = 30.0
RECENTLY_CLOSED = timedelta(hours=1)


def _static(name: str, folder: str = "") -> aioweb.Response:
    # Names of the shipped files only: a NUL or a 300-character name never reaches the file system.
    if not STATIC_NAME.fullmatch(name):
        return aioweb.json_response({"error": "no such file"}, status=404)
    path = (STATIC / folder / name).resolve()
    if path.parent != (STATIC / folder).resolve() or path.suffix not in CONTENT_TYPES or not path.is_file():
        return aioweb.json_response({"error": f"no file {name}"}, status=404)
    return aioweb.Response(body=path.read_bytes(), content_type=CONTENT_TYPES[path.suffix], charset="utf-8",
                           headers={"Cache-Control": "no-cache"})


class BoardPage(web.View):
    async def get(self, request: web.Request) -> aioweb.Response:
        return pages.page("board")


class InboxPage(web.View):
    async def get(self, request: web.Request) -> aioweb.Response:
        return pages.page("inbox")


class InboxWorker(web.View):
    # Served from the root, not /static: a service worker controls only pages under its own path.
    async def get(self, request: web.Request) -> aioweb.Response:
        return _static("inbox-sw.js")


class StaticFile(web.View):
    async def get(self, request: web.Request, name: str) -> aioweb.Response:
        return _static(name)


class BoardModule(web.View):
    """The board's ES modules (static/board/), each imported by its name from main.js."""

    async def get(self, request: web.Request, name: str) -> aioweb.Response:
        return _static(name, "board")


class District(JsonView):
    async def get(self, request: web.Request) -> web.Response:
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
            "board": _board_json(self.http.config.board),
            # Categories resolved only with a photo after the work (routing.yaml): the inbox asks for one.
            "after_photo_to_resolve": [c.value for c in self.http.config.routing.evidence.after_photo_to_resolve],
        })


def _board_json(board) -> dict:
    """board.yaml as the page uses it: the alarm policy in seconds, and the basemap or None."""
    alarms = board.alarms
    return {
        "alarms": {"interval_s": alarms.interval_s, "repeat_after_s": alarms.repeat_after_s,
                   "tones": {kind.value: tone.model_dump() for kind, tone in alarms.tones.items()}},
        "basemap": board.basemap.model_dump() if board.basemap else None,
    }


def _actions(who: Principal, district) -> frozenset[TicketAction]:
    actions = TICKET_ACTIONS[who.role]
    if who.role is UserRole.supervisor and not district.sign_in.supervisors_decide_extensions:
        actions = actions - {TicketAction.extend_decision}
    return actions


async def _snapshot(http, who: Principal) -> list[Ticket]:
    """Open tickets plus those closed in the last hour that `who` may see: what a fresh board should show."""
    since = http.clock() - RECENTLY_CLOSED
    tickets = await http.store.many(await http.store.open_or_closed_since(since))
    return [t for t in tickets if (t.is_open or (t.closed_at and t.closed_at >= since)) and who.can_see(t)]


def _connected(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and not transport.is_closing()


UNAVAILABLE = "工单库暂不可用，请稍后再试 (ticket store unavailable, try again shortly)"


@dataclass(frozen=True)
class Opened:
    """A stream past its checks: whose it is, its slot and place at the hub, and where it starts."""

    who: Principal
    holder: Holder
    subscriber: Subscriber
    position: EntryId
    snapshot: bytes  # empty when resuming after Last-Event-ID


class AlertStream(HttpView):
    """The board's live feed: a snapshot (or the entries since Last-Event-ID), then each ticket event
    its principal may see, from the worker's one board reader (streams/http/board_hub.py)."""

    async def get(self, request: web.Request):
        # EventSource cannot send headers: the board passes its token as ?token= on this route only.
        if "Authorization" not in request.headers and request.query.get("token"):
            request = request.clone(headers={**request.headers, "Authorization": f"Bearer {request.query['token']}"})
        hub = self.http.board
        try:
            async with hub.opening():
                opened = await self._open(request)
        except Refused as refused:
            return self._refuse(refused.status, refused.error, 5)
        if not isinstance(opened, Opened):
            return opened
        try:
            return await self._serve(request, opened)
        finally:
            hub.leave(opened.subscriber)
            hub.slots.give_back(opened.holder)

    def _refuse(self, status: int, error: str, retry_after_s: int) -> web.Response:
        return self.json({"error": error}, status=status, headers={"Retry-After": str(retry_after_s)})

    async def _open(self, request: web.Request) -> Opened | web.Response:
        try:
            who = await self.http.authenticate(request)
            who.require(Can.watch_board)
        except ApiError as exc:
            return self.json({"error": exc.error, **exc.extra}, status=exc.code)
        except (RedisError, OSError):
            return self._refuse(503, UNAVAILABLE, 5)
        hub = self.http.board
        holder = Holder(who.actor.user_id, who.role, who.credential == "wall")
        try:
            hub.slots.take(holder)
        except Refused as refused:
            # A slot comes free when a board closes: streams are long, so the wait is longer too.
            return self._refuse(refused.status, refused.error, 10)
        subscriber = Subscriber(who.can_see, who.reads_all, lambda: _connected(request))
        hub.join(subscriber)
        try:
            position, snapshot = await self._start(request, who)
        except BaseException as exc:
            hub.leave(subscriber)
            hub.slots.give_back(holder)
            if isinstance(exc, (RedisError, OSError)):
                return self._refuse(503, UNAVAILABLE, 5)
            raise
        return Opened(who, holder, subscriber, position, snapshot)

    async def _start(self, request: web.Request, who: Principal) -> tuple[EntryId, bytes]:
        """Where the stream starts: after Last-Event-ID if Redis still holds what follows it, else at
        the newest entry, with the snapshot of that moment."""
        hub, redis = self.http.board, self.http.store.redis
        await hub.started()
        asked = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
        resume = EntryId.parse(asked) if asked else None
        if resume is not None and await self._still_there(resume):
            return resume, b""
        newest = await redis.xrevrange(hub.key, count=1)
        position = (EntryId.parse(newest[0][0].decode()) if newest else None) or ZERO
        tickets = await _snapshot(self.http, who)
        return position, sse("snapshot", orjson.dumps([t.model_dump(mode="json") for t in tickets]), str(position))

    async def _serve(self, request: web.Request, opened: Opened) -> aioweb.StreamResponse:
        response = aioweb.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                                  "X-Accel-Buffering": "no"})
        await response.prepare(request)
        try:
            position = opened.position
            if opened.snapshot:
                await self._write(response, opened.snapshot)
            else:
                position = await self._catch_up(response, opened.subscriber, position)
            await self._follow(request, response, opened.who, opened.subscriber, position)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except TimeoutError:
            # A client that stopped reading: its connection goes, and its slot with it.
            if request.transport is not None:
                request.transport.abort()
        except (RedisError, OSError) as exc:
            log.warning("board stream ended: Redis unavailable", extra={"error": type(exc).__name__})
        except Exception:
            log.exception("board stream failed")
        return response

    async def _follow(self, request, response, who: Principal, subscriber: Subscriber, position: EntryId) -> None:
        """The hub's entries past `position` as they come, and a keepalive every KEEPALIVE_S; ends when
        the client goes or falls behind, or its sign-in ends."""
        next_check = time.monotonic() + KEEPALIVE_S
        while True:
            if not subscriber.pending and not subscriber.ended:
                try:
                    async with asyncio.timeout(max(0.0, next_check - time.monotonic())):
                        await subscriber.wake.wait()
                except TimeoutError:
                    pass
            subscriber.wake.clear()
            if subscriber.ended:
                return
            frames = []
            while subscriber.pending:
                entry = subscriber.pending.popleft()
                if entry.entry_id > position:  # the catch-up or the snapshot had the earlier ones
                    frames.append(entry.frame)
                    position = entry.entry_id
            if frames:
                await self._write(response, b"".join(frames))
            if time.monotonic() >= next_check:
                # A signed-out or expired session, a revoked token or a disabled user ends its
                # streams (a session's idle clock is not restarted by it), busy board or not.
                if not await self._still_signed_in(request, who):
                    return
                await self._write(response, b": keepalive\n\n")
                next_check = time.monotonic() + KEEPALIVE_S

    async def _catch_up(self, response, subscriber: Subscriber, position: EntryId) -> EntryId:
        """The entries after `position` that Redis holds now, in pages; the later ones come from the hub."""
        while True:
            page = await self.http.store.redis.xrange(self.http.board.key, min=f"({position}", count=READ_COUNT)
            frames = []
            for raw_id, fields in page:
                entry = board_entry(raw_id, fields)
                position = entry.entry_id
                if subscriber.sees(entry):
                    frames.append(entry.frame)
            if frames:
                await self._write(response, b"".join(frames))
            if len(page) < READ_COUNT:
                return position

    @staticmethod
    async def _write(response: aioweb.StreamResponse, data: bytes) -> None:
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await response.write(data)

    async def _still_signed_in(self, request, who: Principal) -> bool:
        if who.credential == "session":
            return await self.http.accounts.alive(request.cookies.get(SESSION_COOKIE, ""))
        if who.credential == "token":
            return await self.http.accounts.token_user(bearer_token(request) or "") is not None
        return True  # the environment's tokens last as long as the worker

    async def _still_there(self, resume: EntryId) -> bool:
        """`resume` lies within what the board's Redis stream holds."""
        redis, key = self.http.store.redis, self.http.board.key
        oldest, newest = await redis.xrange(key, count=1), await redis.xrevrange(key, count=1)
        if not oldest or not newest:
            return False
        return (EntryId.parse(oldest[0][0].decode()) or ZERO) <= resume <= (EntryId.parse(newest[0][0].decode()) or ZERO)


def security_headers(img_origins: list[str]) -> dict[str, str]:
    """On every response: the pages load only their own scripts, styles and data, and images only from
    themselves and the configured basemap's tile servers (board.yaml), and nothing frames them."""
    # blob: the inbox's photos, fetched with the clerk's credential and shown from memory.
    img = " ".join(["'self'", "data:", "blob:", *img_origins])
    return {
        "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                   f"img-src {img}; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                                   "frame-ancestors 'none'; form-action 'self'",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


def json_errors(config):
    """The middleware: paths no route matches (an id with a brace, a wrong method) answer in JSON too, and an
    error no view caught is logged and answered in JSON, not as aiohttp's text page; every response gets
    the security headers."""
    basemap = config.board.basemap
    headers = security_headers(basemap.origins if basemap else [])

    @aioweb.middleware
    async def middleware(request, handler):
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
            response.headers.update(headers)
        return response

    return middleware


ROUTES = [
    ("/", "board", BoardPage),
    ("/inbox", "inbox", InboxPage),
    ("/inbox-sw.js", "inbox-worker", InboxWorker),
    ("/static/{name}", "static", StaticFile),
    ("/static/board/{name}", "static-board", BoardModule),
    ("/api/district", "district", District),
    ("/api/alerts/stream", "alerts-stream", AlertStream),
]
