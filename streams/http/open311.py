"""Open311 GeoReport v2 at /open311/v2/ (handlers/open311.py decides): the service list, citizens'
requests in (a CityReport on soc.raw.city), and their status read off the tickets.

Each accepted request is kept in Redis (streams/open311_store.py: the service, place, time and the
incident it became; no personal data) with a time index, so the status routes find its ticket. Errors
are Open311's `[{"code", "description"}]` with the same 4xx status.
"""
from __future__ import annotations

import hmac
import math
import os
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError
from aiohttp import web as aioweb
from faust import web
from redis.exceptions import RedisError

from handlers import open311
from handlers.base import Context
from handlers.instants import BadTime
from handlers.intake import Rejected, to_incident
from handlers.open311 import Invalid
from streams.http.api import ApiError, JsonView, caller_of, log, query_time, read_body, time_words
from streams.open311_store import index_key, keep, request_key
from streams.store import millis

DEFAULT_WINDOW = timedelta(days=90)
MAX_REQUESTS = 1000
# Tickets of one community read when looking for the tickets of requests not matched yet.
MAX_CANDIDATES = 2000


class Open311View(JsonView):
    """Open311's error form for every refusal; the rate limit of the other routes."""

    async def guarded(self, handler, request: web.Request, **match: str) -> web.Response:
        wait = self.http.limiter.allow(caller_of(request))
        if wait:
            return self.json([{"code": 429, "description": "too many requests"}], status=429,
                             headers={"Retry-After": str(max(1, math.ceil(wait)))})
        try:
            return await handler(request, **match)
        except Invalid as exc:
            return self.json([{"code": exc.code, "description": exc.description}], status=exc.code)
        except (RedisError, OSError):
            return self.json([{"code": 503, "description": "store unavailable, try again shortly"}], status=503)
        except Exception:
            log.exception("open311 request failed")
            return self.json([{"code": 500, "description": "internal error"}], status=500)

    async def _records(self, ids: list[str]) -> list[dict]:
        if not ids:
            return []
        values = await self.http.store.redis.mget([request_key(self.http.store, i) for i in ids])
        return [orjson.loads(v) for v in values if v is not None]

    async def tickets_of(self, records: list[dict]) -> dict[str, object]:
        """service_request_id -> its ticket, for the records whose ticket is known or can be found now."""
        store = self.http.store
        found = {}
        known = {r["service_request_id"]: r["ticket_id"] for r in records if r.get("ticket_id")}
        for ticket in await store.many(sorted(set(known.values()))):
            found.update({rid: ticket for rid, tid in known.items() if tid == ticket.ticket_id})
        missing = [r for r in records if r["service_request_id"] not in found]
        for community in sorted({r.get("community") or "" for r in missing}):
            filters = {"source": "city", "community": community} if community else {"source": "city"}
            _, candidates = await store.page(None, filters, 0, MAX_CANDIDATES)
            for record in (r for r in missing if (r.get("community") or "") == community):
                requested = datetime.fromisoformat(record["requested_datetime"])
                matching = [t for t in candidates
                            if open311.belongs(t, record["incident_id"], record["dedup_key"], requested)]
                if matching:
                    ticket = max(matching, key=lambda t: t.dispatched_at)
                    found[record["service_request_id"]] = ticket
                    await store.redis.set(request_key(store, record["service_request_id"]),
                                          orjson.dumps({**record, "ticket_id": ticket.ticket_id}), keepttl=True)
        return found


def _client(view: Open311View, request: web.Request, api_key: str) -> tuple[str, str]:
    """(client name, channel) for an api_key of district.yaml `intake.open311`, else 403; a refused key
    counts against the address's sign-in budget (429 once spent)."""
    try:
        view.http.before_credential(request)
    except ApiError as throttled:
        raise Invalid(429, throttled.error) from None
    for name, client in view.http.config.district.intake.open311.items():
        known = os.environ.get(client.key_env, "")
        if known and api_key and hmac.compare_digest(known.encode(), api_key.encode()):
            return name, client.channel
    view.http.credential_refused(request)
    raise Invalid(403, "api_key missing or unknown")


def _fields(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """Form pairs -> (fields, attribute[...] values); a field given twice is refused."""
    fields, attributes = {}, {}
    for name, value in pairs:
        target, key = (attributes, name[len("attribute["):-1]) if name.startswith("attribute[") and name.endswith("]") \
            else (fields, name)
        if key in target:
            raise Invalid(400, f"{name[:60]} is given twice")
        target[key] = value.strip()
    return fields, attributes


async def _body(view: Open311View, request: web.Request) -> list[tuple[str, str]]:
    try:
        raw = await read_body(request, view.http.settings.max_body_bytes)
    except ApiError as refused:
        raise Invalid(refused.code, refused.error) from None
    kind = request.content_type
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(400, "body is not UTF-8") from None
    if kind == "application/json":
        try:
            data = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            raise Invalid(400, "body is not valid JSON") from None
        if not isinstance(data, dict):
            raise Invalid(400, "body must be a JSON object")
        pairs = []
        for name, value in data.items():
            if name == "attribute" and isinstance(value, dict):
                pairs += [(f"attribute[{k}]", v) for k, v in value.items()]
            else:
                pairs.append((name, value))
        if any(not isinstance(v, (str, int, float)) or isinstance(v, bool) for _, v in pairs):
            raise Invalid(400, "every field must be a string or a number")
        return [(k, str(v)) for k, v in pairs]
    if kind in ("application/x-www-form-urlencoded", ""):
        return parse_qsl(text, keep_blank_values=True)
    raise Invalid(415, "send application/x-www-form-urlencoded or application/json (media as media_url)")


class Services(Open311View):
    async def get(self, request: web.Request, suffix: str) -> web.Response:
        rows = open311.services(self.http.config)
        if suffix == "xml":
            return aioweb.Response(body=open311.as_xml("services", "service", rows), content_type="text/xml",
                                   charset="utf-8")
        if suffix != "json":
            raise Invalid(404, "services.json or services.xml")
        return self.json(rows)


class Requests(Open311View):
    async def post(self, request: web.Request, suffix: str) -> web.Response:
        if suffix != "json":
            raise Invalid(404, "requests.json only")
        fields, attributes = _fields(await _body(self, request))
        client, channel = _client(self, request, fields.pop("api_key", "") or request.query.get("api_key", ""))
        config = self.http.config
        wanted = open311.read_request(fields, attributes, config)
        now = self.http.clock()
        request_id = open311.request_id(client, wanted, now, config)
        store = self.http.store
        if await store.redis.exists(request_key(store, request_id)):  # a retry: the same request, once
            return self.json([{"service_request_id": request_id, "service_notice": "duplicate of an earlier request",
                               "account_id": None}])
        try:
            report = open311.to_report(wanted, request_id, channel, now)
            raw = report.model_dump_json().encode()
            incident = to_incident("city", raw, Context(config, now))
        except (ValidationError, Rejected) as exc:
            raise Invalid(400, str(exc).splitlines()[0][:300]) from None
        await self.http.pipeline.topics.raw["city"].send(key=request_id.encode(), value=raw)
        await keep(store, open311.record(report, incident, client), now)
        return self.json([{"service_request_id": request_id, "service_notice": open311.RECEIVED_NOTE,
                           "account_id": None}], status=201)

    async def get(self, request: web.Request, suffix: str) -> web.Response:
        if suffix != "json":
            raise Invalid(404, "requests.json only")
        query = request.query
        unknown = set(query) - {"start_date", "end_date", "status", "service_code", "service_request_id",
                                "api_key", "jurisdiction_id"}
        if unknown:
            raise Invalid(400, f"unknown parameter(s): {', '.join(sorted(unknown))[:200]}")
        now = self.http.clock()
        end = _date(query, "end_date") or now
        start = _date(query, "start_date") or end - DEFAULT_WINDOW
        if end <= start:
            raise Invalid(400, "end_date must be after start_date")
        statuses = _choices(query, "status", {"open", "closed"})
        codes = _choices(query, "service_code", {s["service_code"] for s in open311.services(self.http.config)})
        if query.get("service_request_id"):
            ids = query["service_request_id"].split(",")[:MAX_REQUESTS]
        else:
            ids = [i.decode() for i in await self.http.store.redis.zrevrangebyscore(
                index_key(self.http.store), millis(end), millis(start))]
        records = await self._records(ids)
        if codes:
            records = [r for r in records if r["service_code"] in codes]
        tickets = await self.tickets_of(records)
        rows = [open311.status(r, tickets.get(r["service_request_id"]), self.http.config) for r in records]
        rows = [r for r in rows if not statuses or r["status"] in statuses]
        return self.json(rows[:MAX_REQUESTS])



class RequestDetail(Open311View):
    async def get(self, request: web.Request, request_id: str) -> web.Response:
        records = await self._records([request_id]) if len(request_id) <= 64 else []
        if not records:
            raise Invalid(404, f"no service request {request_id[:64]}")
        tickets = await self.tickets_of(records)
        return self.json([open311.status(records[0], tickets.get(request_id), self.http.config)])


def _date(query, name: str) -> datetime | None:
    raw = query.get(name)
    if not raw:
        return None
    when = query_time(raw)
    if isinstance(when, BadTime):
        raise Invalid(400, time_words(when, name, "a W3C date-time"))
    return when


def _choices(query, name: str, allowed: set[str]) -> set[str]:
    wanted = {v for v in query.get(name, "").split(",") if v}
    if wanted - allowed:
        raise Invalid(400, f"{name} must be among {', '.join(sorted(allowed))}")
    return wanted


ROUTES = [
    ("/open311/v2/services.{suffix}", "open311-services", Services),
    ("/open311/v2/requests.{suffix}", "open311-requests", Requests),
    ("/open311/v2/requests/{request_id}.json", "open311-request", RequestDetail),
]
