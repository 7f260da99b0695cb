"""CAP 1.2 over HTTP: warning feeds post alerts (`POST /api/ingest/cap`, a feed token from district.yaml
`intake.cap_feeds`), and a red ticket is published as a CAP alert (`GET /api/tickets/{id}/cap`)."""
from __future__ import annotations

import hmac
import os

from aiohttp import web as aioweb
from faust import web

from handlers import cap
from handlers.intake import Rejected
from handlers.permissions import Can
from schemas.enums import Severity
from streams.http.api import ApiError, JsonView, read_body

# Refusals of the document itself (400) rather than of what it says (422).
UNREADABLE = {"too_large": 413, "not_xml": 400, "forbidden_xml": 400}


def feed_of(view: JsonView, request: web.Request) -> str:
    """The feed whose token the request carries (the variables named in district.yaml), else 401; a
    refused token counts against the address's sign-in budget (429 once spent), as any credential does."""
    http = view.http
    http.before_credential(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing bearer token")
    for name, feed in http.config.district.intake.cap_feeds.items():
        known = os.environ.get(feed.token_env, "")
        if known and hmac.compare_digest(known.encode(), token.strip().encode()):
            return name
    http.credential_refused(request)
    raise ApiError(401, "unknown token")


class CapIngest(JsonView):
    async def post(self, request: web.Request) -> web.Response:
        feed = feed_of(self, request)
        raw = await read_body(request, cap.MAX_BYTES)
        try:
            received = await self.http.pipeline.warnings.receive(raw, feed)
        except Rejected as rejected:
            raise ApiError(UNREADABLE.get(rejected.reason, 422), rejected.message, reason=rejected.reason) from None
        record = received.record
        body = {"key": record.key, "identifier": record.identifier, "status": record.status,
                "msg_type": record.msg_type, "kind": record.kind, "severity": record.severity,
                "station_id": record.station_id, "communities": record.communities,
                "expires": record.expires.isoformat() if record.expires else None}
        if received.duplicate:
            return self.json({**body, "duplicate": True})
        if received.ignored is not None:
            # Recorded and dead-lettered, not acted on (an Exercise, a Test).
            return self.json({**body, "acted": False, "reason": received.ignored.message}, status=202)
        return self.json({**body, "acted": True}, status=201)


class TicketCap(JsonView):
    async def get(self, request: web.Request, ticket_id: str) -> aioweb.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        ticket = await self.http.visible_ticket(ticket_id, who)
        if ticket.severity is not Severity.red:
            raise ApiError(409, "CAP alerts are published for red tickets only", severity=ticket.severity.value)
        return aioweb.Response(body=cap.to_cap(ticket, self.http.config), content_type="application/cap+xml",
                               charset="utf-8")


# Before the ticket API's /api/tickets/{ticket_id}/{action}, which would take the path first.
ROUTES = [
    ("/api/ingest/cap", "cap-ingest", CapIngest),
    ("/api/tickets/{ticket_id}/cap", "ticket-cap", TicketCap),
]
