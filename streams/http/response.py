"""The emergency-response level over HTTP: what is in force (any token) and the centre's or the
leadership's own decision (POST), published to soc.response under the `manual` trigger."""
from __future__ import annotations

from typing import Annotated, Literal

import orjson
from faust import web
from pydantic import Field

from handlers import response
from handlers.permissions import Can
from schemas.response import COLOUR, MANUAL, NUMBER, RANK, ResponseChange
from streams.http.api import ApiError, Body, JsonView, validate

HISTORY = 50


class LevelBody(Body):
    level: Literal["I", "II", "III", "IV", "none"]
    reason: Annotated[str, Field(min_length=1, max_length=500)]


def state_json(view: JsonView, histories: dict[str, list[ResponseChange]]) -> dict:
    now = view.http.clock()
    found = response.in_force(histories, now, response.hold_of(view.http.config))
    changes = sorted((c for history in histories.values() for c in history), key=lambda c: c.at, reverse=True)
    level = found.level if found else None
    return {
        "level": level, "number": NUMBER[level] if level else 0, "rank": RANK[level] if level else 0,
        "colour": COLOUR[level] if level else None,
        "since": found.change.at.isoformat() if found else None,
        "reason": found.change.reason if found else None,
        "trigger": found.change.trigger if found else None,
        "history": [c.model_dump(mode="json") for c in changes[:HISTORY]],
    }


class Response(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        return await self.guarded(self._get, request)

    async def post(self, request: web.Request) -> web.Response:
        return await self.guarded(self._post, request)

    async def _get(self, request: web.Request) -> web.Response:
        await self.http.authenticate(request)
        return self.json(state_json(self, self.http.pipeline.response.by_key()))

    async def _post(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        if not who.reads_all:
            raise ApiError(403, "only the operations centre or the leadership sets the response level")
        who.require(Can.set_response)
        body = validate(LevelBody, await self.http.read_json(request))
        histories = self.http.pipeline.response.by_key()
        change = ResponseChange(at=self.http.clock(), level=None if body.level == "none" else body.level,
                                reason=body.reason, trigger=MANUAL, by=who.actor.name)
        manual = [*histories.get(MANUAL, []), change]
        await self.http.pipeline.response_topic.send(
            key=MANUAL.encode(), value=orjson.dumps([c.model_dump(mode="json") for c in manual]))
        self.http.audit(request, "action", "response.set", who, target=body.level, detail=body.reason)
        return self.json(state_json(self, {**histories, MANUAL: manual}), status=201)


ROUTES = [("/api/response", "response", Response)]
