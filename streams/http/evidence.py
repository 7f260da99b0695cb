"""Photo evidence on tickets (处置前后照片): upload, list, and the images themselves.

    POST /api/tickets/{id}/evidence      multipart: `image` (one JPEG or PNG, at most 10 MB), `stage`
                                         (before | after | other), `note` (optional, personal data masked)
    GET  /api/tickets/{id}/evidence      the ticket's photos, oldest first
    GET  /api/evidence/{sha256}          the image, to whoever may see a ticket it was uploaded on
    GET  /api/evidence/{sha256}/thumbnail

An upload may be made by whoever may act on the ticket (the role's ticket actions, then the closed loop's
owner-or-centre rule); the image is decoded and re-encoded off the event loop (handlers/evidence.py), put
on soc.evidence, and recorded on the ticket by an `evidence` command through the ticket step, so the
ticket's history names it and routing.yaml's after-photo rule can see it.
"""
from __future__ import annotations

import asyncio
import re
import uuid

from aiohttp import BodyPartReader
from faust import web

from handlers import evidence, wording
from handlers.evidence import Problem
from handlers.lifecycle import Conflict, check
from handlers.permissions import Can, may_act
from handlers.privacy import mask_personal
from schemas.evidence import EvidenceStage, Photo
from schemas.records import HistoryKind, Ticket, TicketAction, TicketEvent
from streams.evidence_store import ReadTimeout
from streams.http.api import ApiError, JsonView, Principal, TicketAction_, ticket_json

SHA256 = re.compile(r"^[0-9a-f]{64}$")
NOTE_MAX = 2000
# The form's small fields (stage, note) beside the file.
FIELD_MAX = 8 * 1024
STATUS = {Problem.not_an_image: 422, Problem.unsupported: 415, Problem.too_many_pixels: 422,
          Problem.too_large: 413}


def photo_json(ticket: Ticket, entry, who: Principal) -> dict:
    photo = entry.photo
    return {"sha256": photo.sha256, "stage": photo.stage.value, "media_type": photo.media_type.value,
            "width": photo.width, "height": photo.height, "bytes": photo.bytes, "lat": photo.lat, "lon": photo.lon,
            "note": entry.note, "at": entry.at.isoformat(), "by": entry.by,
            "text": wording.history_text(who.district, entry),
            "url": f"/api/evidence/{photo.sha256}", "thumbnail_url": f"/api/evidence/{photo.sha256}/thumbnail"}


def photos(ticket: Ticket) -> list:
    return [e for e in ticket.history if e.kind is HistoryKind.evidence and e.photo is not None]


class TicketEvidence(TicketAction_):
    async def get(self, request: web.Request, ticket_id: str) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        ticket = await self.http.visible_ticket(ticket_id, who)
        return self.json({"ticket_id": ticket.ticket_id, "items": [photo_json(ticket, e, who) for e in photos(ticket)]})

    async def post(self, request: web.Request, ticket_id: str) -> web.Response:  # type: ignore[override]
        who = await self.http.authenticate(request, form=True)
        who.require(Can.read_tickets)
        ticket = await self.http.visible_ticket(ticket_id, who)
        if not may_act(who.role, TicketAction.evidence):
            raise ApiError(403, f"the {who.role.value} role may not upload evidence")
        data, stage, note = await self._form(request)
        processed = await self._processed(data)
        if isinstance(processed, evidence.Refused):
            self.http.audit(request, "action", "ticket.evidence", who, target=ticket.ticket_id, outcome="refused",
                            detail=processed.problem.value)
            raise ApiError(STATUS[processed.problem], processed.message, problem=processed.problem.value)
        photo = Photo(sha256=processed.sha256, stage=stage, media_type=processed.media_type, width=processed.width,
                      height=processed.height, bytes=len(processed.image), lat=processed.lat, lon=processed.lon)
        event = TicketEvent(event_id=f"api-{uuid.uuid4().hex}", ticket_id=ticket.ticket_id,
                            action=TicketAction.evidence, by=who.actor.name, actor=who.department, user=who.actor,
                            holds=list(who.holds), at=self.http.clock(), note=note, photo=photo)
        try:  # the closed loop's rules (not on a closed ticket; the owner or the centre) before anything is stored
            check(self.http.config, ticket, event)
        except Conflict as conflict:
            self.http.audit(request, "action", "ticket.evidence", who, target=ticket.ticket_id, outcome="refused",
                            detail=str(conflict))
            raise ApiError(409, str(conflict), status=ticket.status.value) from None
        await self.http.evidence.put(processed)
        await self.http.evidence.link(processed.sha256, ticket.ticket_id)
        self.http.pipeline.send_command(event, ticket.dedup_key)
        response = await self._outcome(ticket, event, who)
        self.http.audit(request, "action", "ticket.evidence", who, target=ticket.ticket_id,
                        outcome="queued" if response.status == 202 else "ok", detail=note)
        return response if response.status == 202 else self.json(
            {"sha256": photo.sha256, "url": f"/api/evidence/{photo.sha256}",
             "thumbnail_url": f"/api/evidence/{photo.sha256}/thumbnail", "lat": photo.lat, "lon": photo.lon,
             "ticket": ticket_json(await self.http.store.get(ticket.ticket_id), who)}, status=201)

    async def _form(self, request: web.Request) -> tuple[bytes, EvidenceStage, str]:
        """The form's one image, its stage and note: 400 for a form without them or with more than one file,
        413 past the size allowed."""
        self.http.form_only(request)
        limit = evidence.MAX_UPLOAD_BYTES
        if request.content_length is not None and request.content_length > limit + FIELD_MAX * 4:
            raise ApiError(413, f"图片不得超过 {limit // (1024 * 1024)} MB (the image is over {limit} bytes)")
        try:
            reader = await request.multipart()
        except (ValueError, AssertionError):
            raise ApiError(400, "the body is not a multipart form") from None
        image: bytes | None = None
        fields: dict[str, str] = {}
        try:
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise ApiError(400, "nested multipart forms are not accepted")
                if part.name == "image":
                    if image is not None:
                        raise ApiError(400, "send one image per upload")
                    image = await _read_part(part, limit, f"图片不得超过 {limit // (1024 * 1024)} MB "
                                                          f"(the image is over {limit} bytes)")
                elif part.name in ("stage", "note"):
                    text = await _read_part(part, FIELD_MAX, f"{part.name} is too long")
                    fields[part.name] = text.decode("utf-8", "replace")
                else:
                    raise ApiError(400, f"unknown form field {part.name!r}: send image, stage and note")
        except (ValueError, AssertionError):
            raise ApiError(400, "the multipart form could not be read") from None
        if not image:
            raise ApiError(400, "the form needs an 'image' file")
        try:
            stage = EvidenceStage(fields.get("stage", "").strip())
        except ValueError:
            raise ApiError(422, "stage must be one of before, after, other",
                           fields=[{"loc": "stage", "msg": "before, after or other"}]) from None
        note = fields.get("note", "").strip()
        if len(note) > NOTE_MAX:
            raise ApiError(422, f"note is over {NOTE_MAX} characters", fields=[{"loc": "note", "msg": "too long"}])
        return image, stage, mask_personal(note)

    async def _processed(self, data: bytes) -> evidence.Processed | evidence.Refused:
        """Decoded on a thread, a few at a time (the Http's semaphore): the event loop keeps serving meanwhile."""
        async with self.http.decoding:
            return await asyncio.to_thread(evidence.process, data)


async def _read_part(part: BodyPartReader, limit: int, too_large: str) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(256 * 1024):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, too_large)
        chunks.append(chunk)
    return b"".join(chunks)


class EvidenceImage(JsonView):
    async def get(self, request: web.Request, sha256: str, size: str = "") -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        # Another department's image looks exactly like a missing one.
        missing = ApiError(404, f"no image {sha256[:64]}")
        if not SHA256.match(sha256):
            raise missing
        tickets = await self.http.store.many(await self.http.evidence.tickets(sha256))
        if not any(who.can_see(t) for t in tickets):
            raise missing
        try:
            if size == "thumbnail":
                body, media_type = await self.http.evidence.thumbnail(sha256), "image/jpeg"
            else:
                stored = await self.http.evidence.image(sha256)
                body, media_type = (stored.image, stored.media_type.value) if stored else (None, "")
        except ReadTimeout:
            raise ApiError(503, "图片暂时无法读取，请稍后重试 (the image store did not answer in time)") from None
        if body is None:
            raise missing
        # The name is the content's hash: the bytes never change, so a browser keeps them (privately).
        return self.bytes(body, content_type=media_type, headers={
            "Cache-Control": "private, max-age=86400, immutable", "X-Content-Type-Options": "nosniff",
            "Content-Disposition": "inline"})


class EvidenceThumbnail(EvidenceImage):
    async def get(self, request: web.Request, sha256: str) -> web.Response:  # type: ignore[override]
        return await super().get(request, sha256, "thumbnail")


# Before api.ROUTES: /api/tickets/{id}/evidence would otherwise be taken as the action route's `{action}`.
ROUTES = [
    ("/api/tickets/{ticket_id}/evidence", "ticket-evidence", TicketEvidence),
    ("/api/evidence/{sha256}", "evidence-image", EvidenceImage),
    ("/api/evidence/{sha256}/thumbnail", "evidence-thumbnail", EvidenceThumbnail),
]
