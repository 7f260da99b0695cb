"""The review (复盘) of a period over HTTP (docs/reviews.md), for the operations centre and the leadership.

`GET /api/reviews?from=&to=` reviews [from, to) (handlers/review.py); `GET /api/reviews/levels` lists the
response-level periods; `GET /api/reviews/level/{change_id}` reviews one of them, from the level raised until
it was stood down (until now while it is still in force); `GET /api/reviews.pdf` gives either as an A4 PDF;
the page `/reviews` (templates/reviews.html) shows them. The measures come from handlers.performance, as
`/api/performance` and the stats page compute them. `GET` and `PUT /api/reviews/{review_id}/findings` read and
write a review's findings and actions (整改措施): a duty officer of the centre writes them, every version is
kept (streams/review_store.py) and each write is on the audit trail.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated

from aiohttp import web as aioweb
from faust import web
from pydantic import Field

from handlers import response, review, review_pdf
from handlers.permissions import Can, may
from handlers.wording import department_name, local_time
from schemas.enums import OPS_CENTRE
from schemas.review import MAX_FINDINGS, Finding, Written
from streams.http.api import ApiError, Body, only_params, time_param, validate
from streams.http import pages
from streams.http.stats import StatsView
from streams.review_store import ReviewStore

# A review reads every ticket of its period: longer ones are the stats page's business.
MAX_PERIOD = timedelta(days=31)


def period_json(period: review.LevelPeriod) -> dict:
    return {"change_id": period.change_id, "from": period.start.isoformat(),
            "to": period.end.isoformat() if period.end else None, "highest": period.highest,
            "ongoing": period.end is None}


class FindingsBody(Body):
    version: Annotated[int, Field(ge=0)]  # the version this write changes: 0 for the first
    findings: Annotated[list[Finding], Field(max_length=MAX_FINDINGS)]


def written_json(http, review_id: str, written: Written | None) -> dict:
    district = http.config.district
    if written is None:
        return {"review_id": review_id, "version": 0, "findings": [], "at": None, "by": None}
    return {"review_id": review_id, "version": written.version, "at": written.at.isoformat(),
            "at_text": local_time(district, written.at), "at_text_en": local_time(district, written.at, "en"),
            "by": written.by,
            "findings": [{**f.model_dump(mode="json"), "owner_name": department_name(district, f.owner),
                          "owner_name_en": department_name(district, f.owner, "en")} for f in written.findings]}


class ReviewView(StatsView):
    @property
    def written(self) -> ReviewStore:
        return ReviewStore.beside(self.http.store)

    async def review(self, start: datetime, end: datetime, now: datetime) -> dict:
        config = self.http.config
        pipeline = self.http.pipeline
        runs = [r for r in pipeline.books.plan_runs.all()
                if r.started_at < end and (r.ended_at is None or r.ended_at >= start)]
        ids = [t for run in runs for t in run.tickets]
        notifications = self.http.notifications
        tickets = await self.stats.dispatched(start, end)
        # The tickets outside the period that its compound incidents name (a cause opened just before it).
        inside = {t.ticket_id for t in tickets}
        outside = sorted({r.ticket_id for t in tickets for r in t.related} - inside)
        return review.review(
            config.district, start=start, end=end, now=now, tickets=tickets,
            cap_records=pipeline.books.cap.all(), histories=pipeline.books.response.by_key(),
            hold=response.hold_of(config), runs=runs,
            run_tickets={t.ticket_id: t for t in await self.stats.many(ids)} if ids else {},
            notifications=await notifications.between(start, end) if notifications is not None else [],
            basically_counts=config.routing.followup.basically_satisfied_counts,
            radius_m=config.rules.hotspots.radius_m, silences=pipeline.books.silences.all(),
            suppressed=await self.http.store.suppressed_between(start, end),
            linked={t.ticket_id: t for t in await self.stats.many(outside)} if outside else {})

    async def with_written(self, found: dict, review_id: str) -> dict:
        return {**found, "review_id": review_id,
                "written": written_json(self.http, review_id, await self.written.current(review_id))}

    async def of_period(self, query, now: datetime) -> dict:
        """The review of [from, to) the query names."""
        start, end = time_param(query, "from"), time_param(query, "to")
        if start is None or end is None:
            raise ApiError(400, "from and to are required, RFC 3339 times such as 2026-12-08T14:00:00+08:00")
        if end <= start:
            raise ApiError(400, "to must be after from")
        if start > now:
            raise ApiError(400, "from is in the future")
        if end - start > MAX_PERIOD:
            raise ApiError(400, f"a review covers at most {MAX_PERIOD.days} days")
        return await self.with_written(await self.review(start, end, now), review.period_review_id(start, end))

    async def of_level(self, change_id: str, now: datetime) -> dict:
        """The review of the response-level period `change_id` names."""
        found = next((p for p in self.periods(now) if p.change_id == change_id), None)
        if found is None:
            raise ApiError(404, f"no response-level period {change_id[:40]}: GET /api/reviews/levels lists them")
        end = found.end or now
        if end - found.start > MAX_PERIOD:
            end = found.start + MAX_PERIOD
        reviewed = {**await self.review(found.start, end, now), "level_period": period_json(found)}
        return await self.with_written(reviewed, review.level_review_id(found.change_id))

    def periods(self, now: datetime) -> list[review.LevelPeriod]:
        config = self.http.config
        return review.level_periods(config.district, self.http.pipeline.books.response.by_key(),
                                    response.hold_of(config), now)


class Review(ReviewView):
    async def get(self, request: web.Request) -> web.Response:
        await self.allowed(request)
        only_params(request.query, {"from", "to"})
        return self.json(await self.of_period(request.query, self.http.clock()))


class LevelPeriods(ReviewView):
    async def get(self, request: web.Request) -> web.Response:
        await self.allowed(request)
        only_params(request.query, set())
        now = self.http.clock()
        return self.json({"periods": [period_json(p) for p in reversed(self.periods(now))]})


class LevelReview(ReviewView):
    async def get(self, request: web.Request, change_id: str) -> web.Response:
        await self.allowed(request)
        only_params(request.query, set())
        return self.json(await self.of_level(change_id, self.http.clock()))


class ReviewPdf(ReviewView):
    """A review as an A4 PDF (handlers/review_pdf.py): `change=` a level period's, or `from=` and `to=` a
    period's; `lang=zh` (default) or `en`; as a download."""

    async def get(self, request: web.Request) -> aioweb.Response:
        await self.allowed(request)
        query = request.query
        only_params(query, {"change", "from", "to", "lang"})
        lang = query.get("lang", "zh")
        if lang not in ("zh", "en"):
            raise ApiError(400, "lang must be zh or en")
        now = self.http.clock()
        if "change" in query:
            if "from" in query or "to" in query:
                raise ApiError(400, "give change, or from and to, not both")
            found = await self.of_level(query["change"], now)
        else:
            found = await self.of_period(query, now)
        # Laid out in a thread: a storm's review takes a moment, and the worker's streams go on meanwhile.
        body = await asyncio.to_thread(review_pdf.render, self.http.config.district, found, lang)
        name = f"review-{found['review_id']}{'-en' if lang == 'en' else ''}.pdf"
        return aioweb.Response(body=body, content_type="application/pdf",
                               headers={"Content-Disposition": f'attachment; filename="{name}"'})


class Findings(ReviewView):
    """A review's findings and actions: read by the centre and the leadership, written by a duty officer of the
    centre. `PUT` replaces them all, naming the version it changes (a 409 with the version in force when
    someone else wrote in between)."""

    def known(self, review_id: str) -> str:
        found = review.parse_review_id(review_id) if len(review_id) <= 60 else None
        if isinstance(found, review.OfLevel) and any(p.change_id == found.change_id for p in self.periods(self.http.clock())):
            return review_id
        if isinstance(found, review.OfPeriod) and found.end - found.start <= MAX_PERIOD:
            return review_id
        raise ApiError(404, f"no review {review_id[:60]}: a review is level-<change_id> or period-<from>-<to>")

    async def get(self, request: web.Request, review_id: str) -> web.Response:
        await self.allowed(request)
        only_params(request.query, set())
        review_id = self.known(review_id)
        versions = await self.written.versions(review_id)
        district = self.http.config.district
        return self.json({**written_json(self.http, review_id, versions[-1] if versions else None),
                          "versions": [{"version": w.version, "at": w.at.isoformat(), "at_text": local_time(district, w.at),
                                        "at_text_en": local_time(district, w.at, "en"), "by": w.by,
                                        "findings": len(w.findings)} for w in reversed(versions)]})

    async def put(self, request: web.Request, review_id: str) -> web.Response:
        who = await self.http.authenticate(request)
        if who.department != OPS_CENTRE or not may(who.role, Can.write_reviews):
            self.http.audit(request, "action", "review.findings", who, target=review_id[:60], outcome="refused",
                            detail=f"{who.department} {who.role.value}")
            raise ApiError(403, "a review's findings and actions are written by a duty officer of the centre")
        only_params(request.query, set())
        review_id = self.known(review_id)
        body = validate(FindingsBody, await self.http.read_json(request))
        departments = self.http.config.district.departments
        for n, finding in enumerate(body.findings):
            if finding.owner not in departments:
                raise ApiError(400, f"findings.{n}.owner: unknown department {finding.owner[:64]!r}")
        written = Written(review_id=review_id, version=body.version + 1, findings=body.findings,
                          at=self.http.clock(), by=who.actor.name, user_id=who.actor.user_id)
        if await self.written.write(written) is None:
            current = await self.written.current(review_id)
            raise ApiError(409, "someone wrote this review's findings meanwhile: read them again",
                           version=current.version if current else 0)
        self.http.audit(request, "action", "review.findings", who, target=review_id,
                        detail=f"version {written.version}: {len(written.findings)} findings")
        return self.json(written_json(self.http, review_id, written))


class ReviewsPage(web.View):
    async def get(self, request: web.Request):
        return pages.page("reviews")


ROUTES = [
    ("/reviews", "reviews-page", ReviewsPage),
    ("/api/reviews", "reviews", Review),
    ("/api/reviews.pdf", "reviews-pdf", ReviewPdf),
    ("/api/reviews/levels", "review-levels", LevelPeriods),
    ("/api/reviews/level/{change_id}", "review-level", LevelReview),
    ("/api/reviews/{review_id}/findings", "review-findings", Findings),
]
