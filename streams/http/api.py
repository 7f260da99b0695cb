"""The ticket API: reads come from Redis, writes become events on soc.ticket-events.

Any worker serves any request, whichever partition owns the ticket.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import logging
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import orjson
from aiohttp.web_exceptions import HTTPRequestEntityTooLarge
from faust import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError
from redis.exceptions import RedisError

from handlers import instants, performance, wording
from handlers.lifecycle import Conflict, check
from handlers.permissions import Can, may, may_act
from handlers.privacy import mask_personal
from handlers.sign_in import Throttle
from schemas.accounts import Actor, AuditKind, AuditRecord, UserRole
from schemas.enums import OPS_CENTRE, Relation, Severity, Source, TicketStatus
from schemas.records import Ticket, TicketAction, TicketEvent
from schemas.times import SaneTime
from streams.http.board_hub import BoardHub
from streams.accounts import USER_TOKEN_PREFIX, AccountStore, AuditLog, service_actor
from streams.chat_cards import ChatBindings, DingTalkApp, FeishuApp, WeComApp
from streams.evidence_store import EvidenceStore
from streams.topology.mirror import aiokafka_security

log = logging.getLogger("soc.api")

Name = Annotated[str, Field(min_length=1, max_length=100)]
# What people write (comments, return reasons, resolutions): personal data masked as it is read.
Note = Annotated[str, Field(max_length=2000), AfterValidator(mask_personal)]
Required = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(mask_personal)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Principal:
    """Who is asking, as their credential proves: a signed-in user (session or API token), a
    department's service credential, or the read-only wall screen."""

    def __init__(self, actor: Actor, credential: Literal["session", "token", "service", "wall"], config,
                 csrf: str = "", holds: tuple[str, ...] = ()):
        self.actor, self.credential, self.csrf = actor, credential, csrf
        # The departments whose service credential this person holds (the account store).
        self.holds = holds
        self.district = district = config.district
        self.department = actor.department
        self.role = actor.role
        # The centre and the leadership read the whole district; a community workstation its community.
        self.reads_all = self.department in (OPS_CENTRE, district.leadership)
        department = district.departments.get(self.department)
        if department is None:  # a user of a department since taken out of district.yaml
            raise ApiError(403, f"department {self.department} is no longer configured: ask an administrator")
        self.community = department.community

    def require(self, capability: Can) -> None:
        if not may(self.role, capability):
            raise ApiError(403, f"the {self.role.value} role may not {capability.value}")

    def can_see(self, ticket: Ticket) -> bool:
        return (self.reads_all or self.department in ticket.inboxes
                or (self.community is not None and ticket.community == self.community))

    def relation(self, ticket: Ticket) -> Relation:
        if ticket.department == self.department:
            return Relation.own
        # A supporting department (协办) is copied in like a watcher; its own part is in the ticket's `support`.
        copied = self.department in ticket.watchers or any(p.department == self.department for p in ticket.support)
        return Relation.watched if copied else Relation.in_view


# An id the client makes for one action (a phone queues actions while offline and sends them again when the
# connection returns): the same id sent again is the same command, applied once.
ClientId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]


class ActionBody(Body):
    client_id: ClientId | None = None

    def command_fields(self) -> dict[str, Any]:
        """The command's own fields (TicketEvent's names): the note under whichever name the route asks for it
        (a resolution, a reason or a note), and the rest as they are."""
        fields = self.model_dump(exclude={"client_id"})
        said = [fields.pop(name) for name in ("resolution", "reason", "note") if name in fields]
        return {"note": said[0] if said else "", **fields}


class AcceptBody(ActionBody):
    note: Note = ""


class ResolveBody(ActionBody):
    resolution: Required


class ReturnBody(ActionBody):
    reason: Required


class ExtendRequestBody(ActionBody):
    until: SaneTime
    reason: Required


class ExtendDecisionBody(ActionBody):
    approve: StrictBool
    note: Note = ""


class VerifyBody(ActionBody):
    passed: StrictBool
    note: Note = ""
    # Close although some supporting departments (协办) have not given feedback: the note says why.
    override: StrictBool = False


class RedispatchBody(ActionBody):
    department: Name
    note: Note = ""


class CommentBody(ActionBody):
    note: Required


class AcknowledgeBody(ActionBody):
    pass


class ReopenBody(ActionBody):
    reason: Required


class FollowupBody(ActionBody):
    result: Literal["satisfied", "basically_satisfied", "unsatisfied", "unreachable"]
    note: Note = ""


# route action -> (TicketAction, body for a department, body for the operations centre)
ACTIONS: dict[str, tuple[TicketAction, type[Body] | None, type[Body] | None]] = {
    "accept": (TicketAction.accept, AcceptBody, AcceptBody),
    "resolve": (TicketAction.resolve, ResolveBody, ResolveBody),
    "return": (TicketAction.return_, ReturnBody, ReturnBody),
    "extend": (TicketAction.extend, ExtendRequestBody, ExtendDecisionBody),
    "verify": (TicketAction.verify, VerifyBody, VerifyBody),
    "redispatch": (TicketAction.redispatch, RedispatchBody, RedispatchBody),
    "comment": (TicketAction.comment, CommentBody, CommentBody),
    "acknowledge": (TicketAction.acknowledge, AcknowledgeBody, AcknowledgeBody),
    "reopen": (TicketAction.reopen, ReopenBody, ReopenBody),
    "followup": (TicketAction.followup, FollowupBody, FollowupBody),
}
MAX_PAGE = 200
ACTION_WAIT_S = 5.0
T = TypeVar("T")


class ApiError(Exception):
    def __init__(self, code: int, error: str, **extra: Any):
        self.code, self.error, self.extra = code, error, extra
        super().__init__(error)


class CommandRefused(ApiError):
    """The worker that owns a command refused it (handlers/lifecycle.py's reason): a 409 as it stands."""

    def __init__(self, reason: str):
        super().__init__(409, reason)
        self.reason = reason


def validate(model: type[Body], data: dict) -> Body:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
                  for e in exc.errors(include_url=False, include_input=False)]
        raise ApiError(422, "invalid body", fields=fields) from None


def ticket_json(ticket: Ticket, who: Principal) -> dict:
    """A ticket as `who` reads it: with how it stands to them (their own, watched, or only in view), and its
    history in words (handlers/wording.py)."""
    return {**wording.readable(who.district, ticket), "relation": who.relation(ticket).value}


def entry_json(entry) -> dict:
    """A notification log entry as the API shows it (who may read it is the API's business, not the reader's)."""
    return entry.model_dump(mode="json", exclude={"departments"})


class RateLimiter:
    """Token bucket per caller (an identity, a credential, an address): a runaway script cannot starve the
    board. A request spends its cost (a page of 200 tickets more than one ticket) from its caller's bucket."""

    # Callers remembered at most; past it, the buckets that have refilled are dropped (they hold nothing).
    MAX_CALLERS = 10_000

    def __init__(self, rate: float, burst: float, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets: dict[str, tuple[float, float]] = {}

    def allow(self, caller: str, cost: float = 1.0) -> float:
        """0 if allowed now (`cost` spent), else the seconds to wait (nothing spent)."""
        now = self.clock()
        if caller not in self.buckets and len(self.buckets) >= self.MAX_CALLERS:
            full = self.burst / self.rate  # an emptied bucket is full again after this long
            self.buckets = {c: (t, at) for c, (t, at) in self.buckets.items() if now - at < full}
            while len(self.buckets) >= self.MAX_CALLERS:  # all busy: the oldest go
                self.buckets.pop(next(iter(self.buckets)))
        tokens = self._tokens(caller, now)
        cost = min(cost, self.burst)  # else a cost over the burst could never be paid
        if tokens >= cost:
            self.buckets[caller] = (tokens - cost, now)
            return 0.0
        self.buckets[caller] = (tokens, now)
        return (cost - tokens) / self.rate

    def wait(self, caller: str) -> float:
        """The seconds until the caller may spend 1 (0: now), spending nothing."""
        tokens = self._tokens(caller, self.clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def _tokens(self, caller: str, now: float) -> float:
        tokens, last = self.buckets.get(caller, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)


def bearer_token(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (any spelling of the scheme), or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or not token.isascii() or not token.isprintable():
        return None
    return token


def caller_of(request: web.Request) -> str:
    """The rate limiter's key: the token or session itself (not the header's spelling), else the address."""
    secret = bearer_token(request) or request.cookies.get(SESSION_COOKIE)
    return "key:" + hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()[:16] if secret \
        else f"addr:{request.remote}"


SESSION_COOKIE = "soc_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD")


class Http:
    """What the views need of the pipeline, handed to them at registration (they import no app)."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.config = pipeline.config
        self.settings = pipeline.settings
        # The pages' and API's own Redis connections: board streams and listings never take the ones
        # the pipeline's writes need.
        self.store = pipeline.web_store
        self.accounts = AccountStore(self.store.redis, self.store.prefix, self.config, pipeline.clock)
        # The board streams' one Redis reader and their slots (streams/http/board_hub.py).
        self.board = BoardHub(self.store.redis, self.store.key("board"), self.config.district.board_streams)
        self.clock = pipeline.clock
        self.tokens = self._tokens()
        wall_env = self.config.district.wall_token_env
        self.wall_token = os.environ.get(wall_env) if wall_env else None
        # The notification log, when the pipeline notifies (streams/notify_store.py).
        self.notifications = pipeline.notifier.store if pipeline.notifier is not None else None
        self.limiter = RateLimiter(self.settings.api_rate_per_s, self.settings.api_burst)
        self.sign_in_limiter = RateLimiter(self.settings.sign_in_rate_per_s, self.settings.sign_in_burst)
        self.audit_log = AuditLog(self.store.redis, self.store.prefix)
        public = urlsplit(self.settings.public_url)
        self.public_origin = f"{public.scheme}://{public.netloc}"
        # Photo evidence: the images on soc.evidence, their index in Redis (streams/evidence_store.py), and
        # how many uploads are decoded at once (each holds a photo's pixels in memory for a moment).
        self.decoding = asyncio.Semaphore(2)
        self.evidence = EvidenceStore(self.store.redis, self.store.prefix, self.settings.bootstrap_servers,
                                      aiokafka_security(self.settings))

        # Acting from the chat card (streams/http/chat.py): who a chat user is, and the DingTalk app if set.
        self.chat_bindings = ChatBindings(self.store.redis, self.store.prefix)
        self.dingtalk = DingTalkApp.from_settings(self.settings)
        self.wecom = WeComApp.from_settings(self.settings)
        self.feishu = FeishuApp.from_settings(self.settings)

        @pipeline.app.on_before_shutdown.connect
        async def close_evidence(app, **kwargs) -> None:
            await self.evidence.close()
            for chat_app in (self.dingtalk, self.wecom, self.feishu):
                if chat_app is not None:
                    await chat_app.close()

    def _tokens(self) -> dict[str, str]:
        """token -> department, from the environment variables named in district.yaml."""
        found = {}
        for dept_id, dept in self.config.district.departments.items():
            token = os.environ.get(dept.token_env)
            if token:
                found[token] = dept_id
        return found

    async def identify(self, request: web.Request, form: bool = False) -> Principal:
        """The caller from their session cookie (state changes need its CSRF token), a user's API
        token, a department's service token, or the wall screen's token: 401 otherwise. `form`: the route
        takes a multipart form (an upload) where the others take JSON; the CSRF token is needed either way."""
        token = bearer_token(request)
        if token is None:
            session_id = request.cookies.get(SESSION_COOKIE)
            if not session_id:
                raise ApiError(401, "sign in first (POST /api/login), or send a bearer token")
            session = await self.accounts.session(session_id) if session_id.isascii() else None
            if session is None:
                raise ApiError(401, "your session has ended: sign in again")
            if request.method not in SAFE_METHODS:
                self.same_origin(request)
                if request.body_exists and form:
                    self.form_only(request)
                elif request.body_exists:
                    self.json_only(request)
                if not hmac.compare_digest(session.csrf.encode(),
                                           request.headers.get(CSRF_HEADER, "").encode("utf-8", "replace")):
                    raise ApiError(403, f"missing or wrong {CSRF_HEADER} header")
            return Principal(session.user.actor(), "session", self.config, session.csrf, tuple(session.user.holds))
        if self.is_wall(request):
            if request.method not in SAFE_METHODS:
                raise ApiError(403, "the wall screen is read-only: sign in as a duty officer to act")
            return Principal(Actor(user_id="wall", name="大屏 (wall screen)", department=OPS_CENTRE,
                                   role=UserRole.service), "wall", self.config)
        for known, department in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return Principal(service_actor(self.config, department), "service", self.config)
        if token.startswith(USER_TOKEN_PREFIX):
            user = await self.accounts.token_user(token)
            if user is not None:
                return Principal(user.actor(), "token", self.config, holds=tuple(user.holds))
        raise ApiError(401, "unknown token")

    async def authenticate(self, request: web.Request, form: bool = False) -> Principal:
        """The caller (see identify), rate-limited as that identity however it signed in; a refused
        credential counts against the client's address like a failed sign-in, so guessing tokens or
        session ids is throttled as guessing passwords is."""
        self.before_credential(request)
        try:
            who = await self.identify(request, form)
        except ApiError as refused:
            if refused.code == 401:
                self.credential_refused(request)
            raise
        self.charge(who, 1.0)
        return who

    def charge(self, who: Principal, cost: float) -> None:
        """Spends `cost` of the identity's request budget (settings api_rate_per_s, api_burst), whichever
        session or token it came with: 429 once it is spent."""
        wait = self.limiter.allow(f"id:{who.actor.user_id}", cost)
        if wait:
            raise ApiError(429, "too many requests", retry_after_s=round(wait, 2))

    def charge_rows(self, who: Principal, rows: int) -> None:
        """A page's cost beyond its request's own: one more for every api_rows_per_unit rows asked for."""
        self.charge(who, rows / self.settings.api_rows_per_unit)

    def before_credential(self, request: web.Request) -> None:
        """429 before any credential is checked once the address spent its sign-in budget on refused
        ones: a guesser learns nothing more until it refills."""
        wait = self.sign_in_limiter.wait(f"addr:{request.remote}")
        if wait:
            self.pipeline.metrics.sign_in_throttled.labels(Throttle.address.value).inc()
            raise ApiError(429, "too many refused credentials from this address: wait a little",
                           retry_after_s=round(wait, 1))

    def credential_refused(self, request: web.Request) -> None:
        """A refused token, session, feed token or Open311 key spends the address's sign-in budget."""
        self.sign_in_limiter.allow(f"addr:{request.remote}")

    def same_origin(self, request: web.Request) -> None:
        """403 for what a browser says another site sent (Sec-Fetch-Site, Origin): a page elsewhere may not
        sign anyone in nor act with their cookie. A client that sends neither is no browser."""
        site = request.headers.get("Sec-Fetch-Site")
        origin = request.headers.get("Origin")
        if site is not None and site not in ("same-origin", "none"):
            raise ApiError(403, "a request from another site may not sign in or change anything here")
        if origin is not None and origin != self.public_origin and urlsplit(origin).netloc != request.host:
            raise ApiError(403, "a request from another site may not sign in or change anything here")

    def json_only(self, request: web.Request) -> None:
        """415 unless the body is declared JSON (an HTML form cannot declare it)."""
        if request.content_type != "application/json":
            raise ApiError(415, "send the body as JSON (Content-Type: application/json)")

    def form_only(self, request: web.Request) -> None:
        """415 unless the body is a multipart form (a file upload)."""
        if request.content_type != "multipart/form-data":
            raise ApiError(415, "send the file as a multipart form (Content-Type: multipart/form-data)")

    def is_wall(self, request: web.Request) -> bool:
        token = bearer_token(request)
        return bool(self.wall_token and token and hmac.compare_digest(self.wall_token.encode(), token.encode()))

    def audit(self, request: web.Request, kind: AuditKind, what: str, who: Principal | None = None, *,
              actor: Actor | None = None, target: str = "", outcome: str = "ok", detail: str = "",
              user_id: str = "") -> None:
        """One line on soc.audit, by `who` (or an `actor` not signed in): never a password or token,
        notes masked."""
        actor = who.actor if who else actor
        record = AuditRecord(audit_id=uuid.uuid4().hex, at=self.clock(), kind=kind,
                             actor=actor, user_id=user_id or (actor.user_id if actor else ""),
                             what=what, target=target, outcome=outcome, detail=mask_personal(detail)[:500],
                             remote=request.remote or "")
        self.pipeline.send_audit(record)

    async def read_json(self, request: web.Request) -> dict:
        raw = await read_body(request, self.settings.max_body_bytes)
        try:
            data = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "body must be a JSON object")
        return data

    async def applied(self, found: Callable[[], T | None | Awaitable[T | None]], event_id: str | None = None,
                      within: float = ACTION_WAIT_S) -> T | None:
        """What `found()` answers once the worker owning a command has applied it (anything but None or
        False), polled for `within` seconds; None after that, and the caller answers 202. The step's refusal
        of the command `event_id` raises CommandRefused."""
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            if event_id is not None and (reason := await self.store.result(event_id)):
                raise CommandRefused(reason)
            answer = found()
            if inspect.isawaitable(answer):
                answer = await answer
            if answer is not None and answer is not False:
                return answer
            await asyncio.sleep(0.02)
        return None

    async def visible_ticket(self, ticket_id: str, who: Principal) -> Ticket:
        ticket = await self.store.get(ticket_id) if len(ticket_id) <= 64 else None
        # Another department's ticket looks exactly like a missing one.
        if ticket is None or not who.can_see(ticket):
            raise ApiError(404, f"no ticket {ticket_id}")
        return ticket


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, however many writes the client sent it in (content.read(n) returns only what has
    arrived); 413 past `limit` bytes, before reading when Content-Length says so."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"body over {limit} bytes")
    try:
        return await request.clone(client_max_size=limit).read()
    except HTTPRequestEntityTooLarge:
        raise ApiError(413, f"body over {limit} bytes") from None


HANDLERS = ("get", "post", "put", "patch", "delete")


class HttpView(web.View):
    """A view of one pipeline's Http that answers every request itself: the probes and the board's
    stream, which the rate limiter must not refuse."""

    http: Http  # set by register()


class JsonView(HttpView):
    """Every handler a subclass defines runs through `guarded`: the rate limit first, then every error
    is a JSON body with a 4xx code; an unexpected one is logged and still JSON."""

    def __post_init__(self) -> None:
        # Wrapped per instance, where faust dispatches: a handler calling super().get is limited once.
        own = {name for name in HANDLERS if getattr(type(self), name) is not getattr(web.View, name)}
        for name in own:
            self.methods[name] = self._guarding(self.methods[name])
        if "get" in own and type(self).head is web.View.head:
            self.methods["head"] = self._guarding(self.methods["head"])

    def _guarding(self, handler):
        async def guarded_handler(request, **match):
            return await self.guarded(handler, request, **match)
        return guarded_handler

    async def guarded(self, handler, request: web.Request, **match: str) -> web.Response:
        wait = self.http.limiter.allow(caller_of(request))
        if wait:
            return self.json({"error": "too many requests", "retry_after_s": round(wait, 2)}, status=429,
                             headers={"Retry-After": str(max(1, round(wait)))})
        try:
            return await handler(request, **match)
        except ApiError as exc:
            retry = exc.extra.get("retry_after_s")
            return self.json({"error": exc.error, **exc.extra}, status=exc.code,
                             headers={"Retry-After": str(max(1, math.ceil(retry)))} if retry else None)
        except (RedisError, OSError):
            return self.json({"error": "ticket store unavailable, try again shortly"}, status=503)
        except Exception:
            log.exception("request failed")
            return self.json({"error": "internal error"}, status=500)


def only_params(query, allowed: set[str]) -> None:
    """400 naming every query parameter the route does not take."""
    unknown = set(query) - allowed
    if unknown:
        raise ApiError(400, f"unknown parameter(s): {', '.join(sorted(unknown))}")


def page_param(query, name: str, default: int, maximum: int, minimum: int = 0) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not minimum <= int(raw) <= maximum:
        raise ApiError(400, f"{name} must be an integer from {minimum} to {maximum}")
    return int(raw)


def query_time(raw: str) -> datetime | instants.BadTime:
    """A time as a query string carries it (an unencoded "+08:00" arrives as " 08:00"), with its offset and
    in the years the pipeline handles. Each API words its own 400 from the BadTime."""
    return instants.instant(raw.replace(" ", "+"))


def time_words(bad: instants.BadTime, name: str, form: str) -> str:
    """The 400 of a query time: `form` is how the API names the format (an RFC 3339 time...)."""
    return {instants.TimeProblem.not_a_time: f"{name} must be {form}, e.g. 2026-12-01T08:30:00+08:00",
            instants.TimeProblem.no_offset: f"{name} needs a UTC offset",
            instants.TimeProblem.out_of_range: f"{name} must be a time {bad.range_text}"}[bad.problem]


def time_param(query, name: str) -> datetime | None:
    """An RFC 3339 query parameter, or None when absent; 400 when it is not one."""
    raw = query.get(name)
    if not raw:
        return None
    when = query_time(raw)
    if isinstance(when, instants.BadTime):
        raise ApiError(400, time_words(when, name, "an RFC 3339 time"))
    return when


FILTERS = {"status": {s.value for s in TicketStatus}, "severity": {s.value for s in Severity},
           "source": {s.value for s in Source}}


class TicketList(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        query = request.query
        only_params(query, {"department", "status", "severity", "source", "community", "relation", "limit", "offset"})
        wanted = query.get("department")
        if wanted and wanted not in self.http.config.district.departments:
            raise ApiError(400, f"unknown department {wanted!r}")
        if not who.reads_all:
            if wanted and wanted != who.department:
                raise ApiError(404, f"no department {wanted} for this token")
            # A community workstation lists its community's tickets when it asks for them; else its inbox.
            community_wide = not wanted and who.community is not None and query.get("community") == who.community
            wanted = None if community_wide else who.department
        for name, allowed in FILTERS.items():
            if query.get(name) and query[name] not in allowed:
                raise ApiError(400, f"{name} must be one of {', '.join(sorted(allowed))}")
        # A department's inbox narrowed to its own tickets or to those it only watches.
        relation = query.get("relation")
        if relation and relation not in (Relation.own.value, Relation.watched.value):
            raise ApiError(400, "relation must be one of own, watched")
        if relation and not wanted:
            raise ApiError(400, "relation needs a department's inbox: add department")
        limit = page_param(query, "limit", 50, MAX_PAGE, minimum=1)  # 0 would read the range 0..-1: all
        offset = page_param(query, "offset", 0, 10_000_000)
        self.http.charge_rows(who, limit)
        # Paged in Redis: the listing sets are kept in this order (open first, most severe, newest
        # dispatched), so only the page's tickets are read.
        filters = {f: query[f] for f in (*FILTERS, "community") if query.get(f)}
        total, tickets = await self.http.store.page(wanted, filters, offset, limit,
                                                    Relation(relation) if relation else None)
        return self.json({"total": total, "limit": limit, "offset": offset,
                          "items": [ticket_json(t, who) for t in tickets]})


class TicketDetail(JsonView):
    async def get(self, request: web.Request, ticket_id: str) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        body = ticket_json(await self.http.visible_ticket(ticket_id, who), who)
        if self.http.notifications is not None:
            # Read beside the history, not written into it: attempts make no ticket versions.
            body["notifications"] = [entry_json(e) for e in await self.http.notifications.ticket_entries(ticket_id)]
        return self.json(body)


class TicketAction_(JsonView):
    async def post(self, request: web.Request, ticket_id: str, action: str) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)  # before the ticket is looked up: an admin learns nothing of it
        if action not in ACTIONS:
            raise ApiError(404, f"no action {action!r}; actions: {', '.join(ACTIONS)}")
        ticket = await self.http.visible_ticket(ticket_id, who)
        data = await self.http.read_json(request)
        if "by" in data:  # someone naming another person: worth a line in the trail
            self.http.audit(request, "action", f"ticket.{action}", who, target=ticket.ticket_id, outcome="refused",
                            detail="a 'by' in the body")
            raise ApiError(422, "'by' is not accepted: the history names whoever signed in",
                           fields=[{"loc": "by", "msg": "not accepted"}])
        kind, dept_body, centre_body = ACTIONS[action]
        # The centre decides extensions; so does a department's supervisor, who may also ask for one.
        deciding = who.department == OPS_CENTRE or (who.role is UserRole.supervisor and "approve" in data)
        body = validate(centre_body if deciding else dept_body, data)
        if kind is TicketAction.extend and deciding:
            kind = TicketAction.extend_decision
        return await self.command(request, who, ticket, self.new_event(who, ticket.ticket_id, kind, body.client_id,
                                                                    body.command_fields()))

    def new_event(self, who: Principal, ticket_id: str, kind: TicketAction, client_id: str | None,
                  fields: dict) -> TicketEvent:
        """The command as the person signed in gives it, now."""
        return TicketEvent(event_id=command_event_id(who, client_id), ticket_id=ticket_id, action=kind,
                           by=who.actor.name, actor=who.department, user=who.actor, holds=list(who.holds),
                           at=self.http.clock(), **fields)

    async def command(self, request: web.Request, who: Principal, ticket: Ticket, event: TicketEvent) -> web.Response:
        """A command on a ticket: refused by the role (403) or as the ticket step will decide it (409, with the
        reason); a resend of one already applied answered with the ticket as it stands; else sent and waited
        for. Each way a line in the audit trail."""
        kind = event.action

        def audit(outcome: str, detail: str) -> None:
            self.http.audit(request, "action", f"ticket.{kind.value}", who, target=ticket.ticket_id,
                            outcome=outcome, detail=detail)

        if not may_act(who.role, kind):
            audit("refused", f"role {who.role.value}")
            raise ApiError(403, f"the {who.role.value} role may not {kind.value} tickets")
        if any(h.event_id == event.event_id for h in ticket.history):
            # A resend of a command already applied (its answer was lost): the ticket as it stands.
            audit("replayed", event.note)
            return self.json({**ticket_json(ticket, who), "replayed": True})
        try:
            check(self.http.config, ticket, event)
        except Conflict as conflict:
            audit("refused", str(conflict))
            raise ApiError(409, str(conflict), status=ticket.status.value, ticket=ticket_json(ticket, who)) from None
        self.http.pipeline.send_command(event, ticket.dedup_key)
        try:
            response = await self._outcome(ticket, event, who)
        except ApiError as refused:
            audit("refused", refused.error)
            raise
        audit("queued" if response.status == 202 else "ok", event.note)
        return response

    async def _outcome(self, before: Ticket, event: TicketEvent, who: Principal) -> web.Response:
        """Wait for the owning worker to apply the event, so the clerk sees the result."""
        try:
            current = await self.http.applied(lambda: with_event(self.http, before.ticket_id, event.event_id),
                                              event.event_id)
        except CommandRefused as refused:
            current = await self.http.store.get(before.ticket_id)
            raise ApiError(409, refused.reason, status=current.status.value, ticket=ticket_json(current, who)) from None
        if current is not None:
            return self.json(ticket_json(current, who))
        return self.json({"accepted": True, "event_id": event.event_id,
                          "note": "queued; the ticket will change when the owning worker applies it"}, status=202)


async def with_event(http: Http, ticket_id: str, event_id: str) -> Ticket | None:
    """The ticket as stored, once its history holds the event."""
    current = await http.store.get(ticket_id)
    return current if current and any(h.event_id == event_id for h in current.history) else None


def command_event_id(who: Principal, client_id: str | None) -> str:
    """The command's event id: from the client's own id when it sent one (so a resend is the same command, and
    the ticket step applies it once: handlers/lifecycle.py replays an event id already in the history), scoped
    to the person so that nobody's id can stand for another's; else a new one."""
    if client_id is None:
        return f"api-{uuid.uuid4().hex}"
    return f"client-{who.actor.user_id}-{client_id}"


def _period(query, now: datetime) -> tuple[datetime, datetime]:
    start = time_param(query, "from") or now - timedelta(days=30)
    end = time_param(query, "to") or now + timedelta(seconds=1)
    if end <= start:
        raise ApiError(400, "to must be after from")
    return start, end


class Performance(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        only_params(request.query, {"from", "to"})
        now = self.http.clock()
        start, end = _period(request.query, now)
        # From the facts kept beside every ticket (the gauges read the same), not every ticket in full.
        table = performance.gauges(await self.http.store.gauge_facts(), start, end, now,
                                   self.http.config.routing.followup.basically_satisfied_counts).rows
        if not who.reads_all:
            table = {d: row for d, row in table.items() if d == who.department}
        return self.json({"from": start.isoformat(), "to": end.isoformat(),
                          "departments": [row.as_dict() for _, row in sorted(table.items())]})


ROUTES = [
    ("/api/tickets", "tickets", TicketList),
    ("/api/tickets/{ticket_id}", "ticket", TicketDetail),
    ("/api/tickets/{ticket_id}/{action}", "ticket-action", TicketAction_),
    ("/api/performance", "performance", Performance),
]
