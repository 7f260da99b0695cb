"""CAP warnings on the worker: alerts from the feeds decided by handlers/cap.py, their readings sent to
soc.raw.flood (the normal path grades and tickets them and moves the response level), the alerts
recorded on soc.cap (mirrored whole on every worker, so any worker knows what an Update references),
and a guarded timer that keeps each live signal up and lowers it when the alert expires."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from handlers import cap, response
from handlers.intake import Rejected, dead_letter
from schemas.cap import CapRecord
from streams.topology.mirror import TopicMirror

log = logging.getLogger("soc.cap")

SOURCE = "cap"
DEADLETTER_TOPIC = "POST /api/ingest/cap"
# A POST returns once this worker's mirror shows the alert, so a feed's next Update finds it.
RECORDED_WAIT_S = 5.0


@dataclass(frozen=True)
class Received:
    record: CapRecord
    duplicate: bool = False
    ignored: Rejected | None = None


class Warnings:
    def __init__(self, pipeline, mirror: TopicMirror, lowerings):
        """mirror: soc.cap's, which fills the pipeline's `books.cap`; lowerings: streams.topology.pipeline.SentSteps,
        so a lowering whose record was lost is sent again."""
        self.p, self.mirror, self.lowerings = pipeline, mirror, lowerings
        self.readings_sent: set[str] = set()

    async def receive(self, raw: bytes, feed: str) -> Received:
        """One document from a feed; raises Rejected (dead-lettered and counted) when it is not taken."""
        p = self.p
        now = p.clock()
        p.metrics.events.labels(SOURCE).inc()
        await self.mirror.ready.wait()
        try:
            alert = cap.parse(raw)
            known = p.books.cap.get(alert.key)
            if known is not None:  # a feed's retry: already taken
                return Received(known, duplicate=True)
            decision = cap.decide(alert, feed, p.books.cap.by_key(), p.config, now)
        except Rejected as rejected:
            self._dead_letter(raw, rejected, now)
            raise
        # Readings first: a crash before the records are written makes the retry send them again, and a
        # reading sent twice is the same incident (its id comes from the station and the time).
        for reading in decision.readings:
            await p.topics.raw["flood"].send(key=reading.station_id.encode(),
                                             value=reading.model_dump_json().encode())
        for record in decision.records:
            await p.topics.cap.send(key=record.key.encode(), value=record.model_dump_json().encode())
        if decision.ignored is not None:
            self._dead_letter(raw, decision.ignored, now)
        record = decision.records[0]
        deadline = asyncio.get_running_loop().time() + RECORDED_WAIT_S
        while p.books.cap.get(record.key) != record and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        log.info("cap alert taken", extra={"key": record.key, "msg_type": record.msg_type, "status": record.status,
                                           "severity": record.severity.value if record.severity else None})
        return Received(record, ignored=decision.ignored)

    def _dead_letter(self, raw: bytes, rejected: Rejected, now) -> None:
        self.p.metrics.rejected.labels(SOURCE, rejected.reason).inc()
        log.warning("cap alert refused", extra={"reason": rejected.reason})
        self.p.send_dead_letter(dead_letter(DEADLETTER_TOPIC, None, None, raw, rejected, now))

    async def keep_up(self) -> None:
        """Each live signal read again every half response.hold, and lowered once its alert expired; only
        for the signals whose flood key this worker owns. Repeats are the same readings (fixed times)."""
        p = self.p
        if p.app.rebalancing or not self.mirror.ready.is_set():
            return
        now = p.clock()
        every = response.hold_of(p.config) / 2
        due_now: set[str] = set()
        for record in p.books.cap.all():
            if not record.live or not p.owns(f"flood:{cap.CATEGORY[record.kind].value}:{record.station_id}"):
                continue
            reading, lowered = cap.due(p.config, record, now, every)
            mark = f"{record.key}@{reading.observed_at.isoformat()}"
            due_now.add(mark)
            if lowered is None and mark in self.readings_sent:
                continue
            if lowered is not None and not self.lowerings.should_send(mark, now):
                continue
            self.readings_sent.add(mark)
            p.topics.raw["flood"].send_soon(key=reading.station_id.encode(), value=reading.model_dump_json().encode())
            if lowered is not None:
                log.info("cap alert expired: signal lowered", extra={"key": record.key})
                p.topics.cap.send_soon(key=lowered.key.encode(), value=lowered.model_dump_json().encode())
        self.readings_sent &= due_now
        self.lowerings.keep_only(due_now)
