"""Silences over HTTP (ops centre only): make one, list them by state, end one early, and list what the
silences kept from opening a ticket.

A silence is published to soc.silences and reaches every worker's silence_id_to_silence table from
there, so a GET right after a POST may not list it yet (it does within the table's propagation time).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from faust import web

from handlers import silences
from handlers.permissions import Can
from handlers.privacy import mask_personal, never_masked
from schemas.enums import OPS_CENTRE
from schemas.silences import Silence, SilenceSpec
from streams.http.api import ApiError, JsonView, Principal, only_params, page_param, time_param, validate

STATES = ("active", "pending", "expired")
DEFAULT_SILENCED_SINCE = timedelta(hours=24)
MAX_SILENCED = 1000


async def _centre_only(view: JsonView, request: web.Request) -> Principal:
    who = await view.http.authenticate(request)
    if who.department != OPS_CENTRE:
        raise ApiError(403, "only the operations centre manages silences")
    who.require(Can.manage_silences)
    return who


def silence_json(silence: Silence, now: datetime) -> dict:
    return {**silence.model_dump(mode="json"), "state": silences.state(silence, now)}


async def publish(view: JsonView, silence: Silence) -> None:
    topic = view.http.pipeline.topics.silences
    await topic.send(key=silence.silence_id.encode(), value=silence.model_dump_json().encode())


class SilenceList(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        await _centre_only(self, request)
        only_params(request.query, {"state"})
        wanted = request.query.get("state")
        if wanted is not None and wanted not in STATES:
            raise ApiError(400, f"state must be one of {', '.join(STATES)}")
        now = self.http.clock()
        found = [silence_json(s, now) for s in self.http.pipeline.books.silences.all()]
        return self.json({"silences": [s for s in found if wanted is None or s["state"] == wanted]})

    async def post(self, request: web.Request) -> web.Response:
        who = await _centre_only(self, request)
        spec = validate(SilenceSpec, await self.http.read_json(request))
        now = self.http.clock()
        if spec.ends_at <= now:
            raise ApiError(422, "ends_at is in the past")
        fields = {**spec.model_dump(), "comment": mask_personal(spec.comment)}  # what a person wrote
        silence = Silence(**fields, silence_id=never_masked(f"S{now:%Y%m%d}-{uuid.uuid4().hex[:10]}"),
                          created_by=who.actor.name, created_at=now)
        await publish(self, silence)
        self.http.audit(request, "action", "silence.create", who, target=silence.silence_id, detail=silence.comment)
        return self.json(silence_json(silence, now), status=201)


class SilenceDetail(JsonView):
    async def delete(self, request: web.Request, silence_id: str) -> web.Response:
        who = await _centre_only(self, request)
        silence = self.http.pipeline.books.silences.get(silence_id) if len(silence_id) <= 64 else None
        if silence is None:
            raise ApiError(404, f"no silence {silence_id}")
        now = self.http.clock()
        if silences.state(silence, now) == "expired":
            return self.json(silence_json(silence, now))
        ended = silence.model_copy(update={"ends_at": max(now, silence.starts_at), "expired_by": who.actor.name})
        await publish(self, ended)
        self.http.audit(request, "action", "silence.expire", who, target=silence_id)
        return self.json(silence_json(ended, now))


class Silenced(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        await _centre_only(self, request)
        query = request.query
        only_params(query, {"since", "limit"})
        since = time_param(query, "since") or self.http.clock() - DEFAULT_SILENCED_SINCE
        limit = page_param(query, "limit", 200, MAX_SILENCED)
        return self.json({"since": since.isoformat(), "incidents": await self.http.store.silenced(since, limit)})


ROUTES = [
    ("/api/silences", "silences", SilenceList),
    ("/api/silences/{silence_id}", "silence", SilenceDetail),
    ("/api/silenced", "silenced", Silenced),
]
