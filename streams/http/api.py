"""The ticket API: reads come from Redis, writes become events on soc.ticket-events.

Any worker serves any request, whichever partition owns the ticket.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from faust import web
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, ValidationError
from redis.exceptions import RedisError

from handlers import performance
from handlers.lifecycle import Conflict, check
from handlers.permissions import Can, may, may_act
from handlers.privacy import mask_phones
from schemas.accounts import Actor, AuditKind, AuditRecord, UserRole
from schemas.enums import OPS_CENTRE, Severity, Source, TicketStatus
from schemas.records import Ticket, TicketAction, TicketEvent
from streams.accounts import USER_TOKEN_PREFIX, AccountStore, AuditLog, service_actor

log = logging.getLogger("soc.api")

Name = Annotated[str, Field(min_length=1, max_length=100)]
Note = Annotated[str, Field(max_length=2000)]
Required = Annotated[str, Field(min_length=1, max_length=4000)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Principal:
    """Who is asking, as their credential proves: a signed-in user (session or API token), a
    department's service credential, or the read-only wall screen."""

    def __init__(self, actor: Actor, credential: Literal["session", "token", "service", "wall"], config,
                 csrf: str = ""):
        self.actor, self.credential, self.csrf = actor, credential, csrf
        district = config.district
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


class AcceptBody(Body):
    note: Note = ""


class ResolveBody(Body):
    resolution: Required


class ReturnBody(Body):
    reason: Required


def _sane_time(value: datetime) -> datetime:
    # A person's date far from now (year 9999) overflowed the deadline arithmetic downstream.
    if not 2000 <= value.year <= 2100:
        raise ValueError("must be a time between the years 2000 and 2100")
    return value


SaneTime = Annotated[AwareDatetime, AfterValidator(_sane_time)]


class ExtendRequestBody(Body):
    until: SaneTime
    reason: Required


class ExtendDecisionBody(Body):
    approve: StrictBool
    note: Note = ""


class VerifyBody(Body):
    passed: StrictBool
    note: Note = ""


class RedispatchBody(Body):
    department: Name
    note: Note = ""


class CommentBody(Body):
    note: Required


class ReopenBody(Body):
    reason: Required


class FollowupBody(Body):
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
    "reopen": (TicketAction.reopen, ReopenBody, ReopenBody),
    "followup": (TicketAction.followup, FollowupBody, FollowupBody),
}
MAX_PAGE = 200
ACTION_WAIT_S = 5.0


class ApiError(Exception):
    def __init__(self, code: int, error: str, **extra: Any):
        self.code, self.error, self.extra = code, error, extra
        super().__init__(error)


def validate(model: type[Body], data: dict) -> Body:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
                  for e in exc.errors(include_url=False, include_input=False)]
        raise ApiError(422, "invalid body", fields=fields) from None


def ticket_json(ticket: Ticket) -> dict:
    return ticket.model_dump(mode="json")


def entry_json(entry) -> dict:
    """A notification log entry as the API shows it (who may read it is the API's business, not the reader's)."""
    return entry.model_dump(mode="json", exclude={"departments"})


class RateLimiter:
    """Token bucket per caller (bearer token, else address): a runaway script cannot starve the board."""

    # Callers remembered at most; past it, the buckets that have refilled are dropped (they hold nothing).
    MAX_CALLERS = 10_000

    def __init__(self, rate: float, burst: float, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets: dict[str, tuple[float, float]] = {}

    def allow(self, caller: str) -> float:
        """0 if allowed now, else the seconds to wait."""
        now = self.clock()
        if caller not in self.buckets and len(self.buckets) >= self.MAX_CALLERS:
            full = (self.burst - 1) / self.rate
            self.buckets = {c: (t, at) for c, (t, at) in self.buckets.items() if now - at < full}
            while len(self.buckets) >= self.MAX_CALLERS:  # all busy: the oldest go
                self.buckets.pop(next(iter(self.buckets)))
        tokens, last = self.buckets.get(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self.buckets[caller] = (tokens - 1, now)
            return 0.0
        self.buckets[caller] = (tokens, now)
        return (1 - tokens) / self.rate


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
        # Board streams open now, per caller (streams/http/board.py bounds them).
        self.open_streams: Counter[str] = Counter()
        self.clock = pipeline.clock
        self.tokens = self._tokens()
        wall_env = self.config.district.wall_token_env
        self.wall_token = os.environ.get(wall_env) if wall_env else None
        # The notification log, when the pipeline notifies (streams/notify_store.py).
        self.notifications = pipeline.notifier.store if pipeline.notifier is not None else None
        self.limiter = RateLimiter(self.settings.api_rate_per_s, self.settings.api_burst)
        self.sign_in_limiter = RateLimiter(self.settings.sign_in_rate_per_s, self.settings.sign_in_burst)
        self.audit_log = AuditLog(self.store.redis, self.store.prefix)

    def _tokens(self) -> dict[str, str]:
        """token -> department, from the environment variables named in district.yaml."""
        found = {}
        for dept_id, dept in self.config.district.departments.items():
            token = os.environ.get(dept.token_env)
            if token:
                found[token] = dept_id
        return found

    async def identify(self, request: web.Request) -> Principal:
        """The caller from their session cookie (state changes need its CSRF token), a user's API
        token, a department's service token, or the wall screen's token: 401 otherwise."""
        token = bearer_token(request)
        if token is None:
            session_id = request.cookies.get(SESSION_COOKIE)
            if not session_id:
                raise ApiError(401, "sign in first (POST /api/login), or send a bearer token")
            session = await self.accounts.session(session_id) if session_id.isascii() else None
            if session is None:
                raise ApiError(401, "your session has ended: sign in again")
            if request.method not in SAFE_METHODS and not hmac.compare_digest(
                    session.csrf.encode(), request.headers.get(CSRF_HEADER, "").encode("utf-8", "replace")):
                raise ApiError(403, f"missing or wrong {CSRF_HEADER} header")
            return Principal(session.user.actor(), "session", self.config, session.csrf)
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
                return Principal(user.actor(), "token", self.config)
        raise ApiError(401, "unknown token")

    async def authenticate(self, request: web.Request) -> Principal:
        """The caller (see identify), rate-limited as that identity however it signed in; a refused
        credential counts against the client's address like a failed sign-in, so guessing tokens or
        session ids is throttled as guessing passwords is."""
        try:
            who = await self.identify(request)
        except ApiError as refused:
            if refused.code == 401 and self.sign_in_limiter.allow(f"addr:{request.remote}"):
                raise ApiError(429, "too many refused credentials from this address: wait a little") from None
            raise
        wait = self.limiter.allow(f"id:{who.actor.user_id}")
        if wait:
            raise ApiError(429, "too many requests", retry_after_s=round(wait, 2))
        return who

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
                             what=what, target=target, outcome=outcome, detail=mask_phones(detail)[:500],
                             remote=request.remote or "")
        self.pipeline.send_audit(record)

    async def read_json(self, request: web.Request) -> dict:
        limit = self.settings.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise ApiError(413, f"body over {limit} bytes")
        raw = await request.content.read(limit + 1)
        if len(raw) > limit:
            raise ApiError(413, f"body over {limit} bytes")
        try:
            data = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "body must be a JSON object")
        return data

    async def visible_ticket(self, ticket_id: str, who: Principal) -> Ticket:
        ticket = await self.store.get(ticket_id) if len(ticket_id) <= 64 else None
        # Another department's ticket looks exactly like a missing one.
        if ticket is None or not who.can_see(ticket):
            raise ApiError(404, f"no ticket {ticket_id}")
        return ticket


class JsonView(web.View):
    """Every error is a JSON body with a 4xx code; an unexpected one is logged and still JSON."""

    http: Http  # set by register()

    async def guarded(self, handler, *args) -> web.Response:
        wait = self.http.limiter.allow(caller_of(args[0]))
        if wait:
            return self.json({"error": "too many requests", "retry_after_s": round(wait, 2)}, status=429,
                             headers={"Retry-After": str(max(1, round(wait)))})
        try:
            return await handler(*args)
        except ApiError as exc:
            return self.json({"error": exc.error, **exc.extra}, status=exc.code)
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


def query_time(raw: str) -> datetime:
    """A time as a query string carries it (ValueError when it is not one; it may lack an offset):
    an unencoded "+08:00" arrives as " 08:00". Each API words its own 400."""
    return datetime.fromisoformat(raw.replace(" ", "+"))


def time_param(query, name: str) -> datetime | None:
    """An RFC 3339 query parameter, or None when absent; 400 when it is not one."""
    raw = query.get(name)
    if not raw:
        return None
    try:
        when = query_time(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an RFC 3339 time, e.g. 2026-12-01T08:30:00+08:00") from None
    if when.utcoffset() is None:
        raise ApiError(400, f"{name} needs a UTC offset")
    return when


FILTERS = {"status": {s.value for s in TicketStatus}, "severity": {s.value for s in Severity},
           "source": {s.value for s in Source}}


class TicketList(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        return await self.guarded(self._list, request)

    async def _list(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        query = request.query
        only_params(query, {"department", "status", "severity", "source", "community", "limit", "offset"})
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
        limit = page_param(query, "limit", 50, MAX_PAGE, minimum=1)  # 0 would read the range 0..-1: all
        offset = page_param(query, "offset", 0, 10_000_000)
        # Paged in Redis: the listing sets are kept in this order (open first, most severe, newest
        # dispatched), so only the page's tickets are read.
        filters = {f: query[f] for f in (*FILTERS, "community") if query.get(f)}
        total, tickets = await self.http.store.page(wanted, filters, offset, limit)
        return self.json({"total": total, "limit": limit, "offset": offset,
                          "items": [ticket_json(t) for t in tickets]})


class TicketDetail(JsonView):
    async def get(self, request: web.Request, ticket_id: str) -> web.Response:
        return await self.guarded(self._get, request, ticket_id)

    async def _get(self, request: web.Request, ticket_id: str) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        body = ticket_json(await self.http.visible_ticket(ticket_id, who))
        if self.http.notifications is not None:
            # Read beside the history, not written into it: attempts make no ticket versions.
            body["notifications"] = [entry_json(e) for e in await self.http.notifications.ticket_entries(ticket_id)]
        return self.json(body)


class TicketAction_(JsonView):
    async def post(self, request: web.Request, ticket_id: str, action: str) -> web.Response:
        return await self.guarded(self._act, request, ticket_id, action)

    async def _act(self, request: web.Request, ticket_id: str, action: str) -> web.Response:
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

        def audit(outcome: str, detail: str) -> None:
            self.http.audit(request, "action", f"ticket.{kind.value}", who, target=ticket.ticket_id,
                            outcome=outcome, detail=detail)

        if not may_act(who.role, kind):
            audit("refused", f"role {who.role.value}")
            raise ApiError(403, f"the {who.role.value} role may not {kind.value} tickets")
        note = next((getattr(body, f) for f in ("resolution", "reason", "note") if hasattr(body, f)), "")
        event = TicketEvent(
            event_id=f"api-{uuid.uuid4().hex}", ticket_id=ticket.ticket_id, action=kind,
            by=who.actor.name, actor=who.department, user=who.actor, at=self.http.clock(), note=mask_phones(note),
            until=getattr(body, "until", None), approve=getattr(body, "approve", None),
            passed=getattr(body, "passed", None), department=getattr(body, "department", None),
            result=getattr(body, "result", None),
        )
        try:
            check(self.http.config, ticket, event)
        except Conflict as conflict:
            audit("refused", str(conflict))
            raise ApiError(409, str(conflict), status=ticket.status.value, ticket=ticket_json(ticket)) from None
        self.http.pipeline.send_command(event, ticket.dedup_key)
        try:
            response = await self._outcome(ticket, event)
        except ApiError as refused:
            audit("refused", refused.error)
            raise
        audit("queued" if response.status == 202 else "ok", event.note)
        return response

    async def _outcome(self, before: Ticket, event: TicketEvent) -> web.Response:
        """Wait for the owning worker to apply the event, so the clerk sees the result."""
        deadline = asyncio.get_running_loop().time() + ACTION_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            rejected = await self.http.store.result(event.event_id)
            if rejected:
                current = await self.http.store.get(before.ticket_id)
                raise ApiError(409, rejected, status=current.status.value, ticket=ticket_json(current))
            current = await self.http.store.get(before.ticket_id)
            if current and any(h.event_id == event.event_id for h in current.history):
                return self.json(ticket_json(current))
            await asyncio.sleep(0.02)
        return self.json({"accepted": True, "event_id": event.event_id,
                          "note": "queued; the ticket will change when the owning worker applies it"}, status=202)


def _period(query, now: datetime) -> tuple[datetime, datetime]:
    try:
        start = datetime.fromisoformat(query["from"]) if query.get("from") else now - timedelta(days=30)
        end = datetime.fromisoformat(query["to"]) if query.get("to") else now + timedelta(seconds=1)
    except ValueError:
        raise ApiError(400, "from and to must be ISO 8601 times with an offset, e.g. 2026-11-01T00:00:00+08:00") from None
    if start.tzinfo is None or end.tzinfo is None:
        raise ApiError(400, "from and to need a UTC offset")
    if end <= start:
        raise ApiError(400, "to must be after from")
    return start, end


class Performance(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        return await self.guarded(self._get, request)

    async def _get(self, request: web.Request) -> web.Response:
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
