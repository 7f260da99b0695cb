"""The leadership view (/stats) and the daily duty report (值班日报, /stats/daily), for the operations
centre and the district leadership.

`GET /api/stats` gives every chart's figures in one answer; `GET /api/stats/daily?date=` the report of
one duty day in the district's time zone (handlers/daily.py), `GET /api/stats/daily.pdf` the same as an A4
PDF; `GET /api/hotspots` the recurring places (高发点位, handlers/hotspots.py) drawn on the page's map;
`GET /api/stats/seasons?category=` each category's reports by week of the year and hour of the day
(handlers/seasons.py) for the page's seasonal chart. The
department rates come from the gauge facts through handlers.performance exactly as `/api/performance`
computes them, so a chart and the API agree.
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import get_args

from aiohttp import web as aioweb
from faust import web

from handlers import hotspots as recurring_places
from handlers import daily, daily_pdf, duty, instants, opened, performance, response, seasons
from handlers.permissions import Can
from handlers.privacy import mask_personal
from schemas.enums import Category, Severity, Source
from schemas.records import Ticket
from streams.http.api import ApiError, JsonView, only_params
from streams.http import pages
from streams.stats_store import StatsStore

WINDOWS_DAYS = (7, 30)
TREND_DAYS = 30
HOURS = 48
HOTSPOTS = 10
AGE_BUCKETS = [("lt1h", timedelta(hours=1)), ("1to4h", timedelta(hours=4)), ("4to24h", timedelta(hours=24)),
               ("1to3d", timedelta(days=3)), ("gt3d", None)]
TREND_RATES = ("on_time_handling", "closure", "rework", "satisfaction")
SEVERITIES = [s.value for s in Severity]
SOURCES = [s.value for s in Source]
ALL = "*"


def district_rates(raws: list[bytes], start: datetime, end: datetime, now: datetime, basically: bool) -> dict:
    """The whole district's row for a period: every department's facts counted as one department."""
    facts = [replace(performance.stored_facts(r), department=ALL) for r in raws]
    rows = performance.table(facts, start.timestamp(), end.timestamp(), now.timestamp(), basically)
    row = rows.get(ALL)
    return {"dispatched": row.dispatched if row else 0,
            **{rate: (row.rates.get(rate) if row else None) for rate in TREND_RATES}}


def hourly(tickets: list[Ticket], start: datetime, zone) -> dict:
    """Tickets opened per hour from `start` (an hour boundary), by source and by severity."""
    found = opened.per_slot(tickets, start, HOURS)
    return {"hours": [h.astimezone(zone).isoformat() for h in found["starts"]], "by_source": found["by_source"],
            "by_severity": found["by_severity"]}


def hotspots(tickets: list[Ticket], limit: int = HOTSPOTS) -> list[dict]:
    """The places that keep coming back: tickets grouped by dedup key, most reports first."""
    groups: dict[str, list[Ticket]] = defaultdict(list)
    for t in tickets:
        groups[t.dedup_key].append(t)
    rows = []
    for key, group in groups.items():
        latest = max(group, key=lambda t: t.dispatched_at)
        rows.append({"dedup_key": key, "title": mask_personal(latest.title), "community": latest.community,
                     "source": latest.source.value, "category": latest.category.value,
                     "tickets": len(group), "reports": sum(t.occurrences for t in group),
                     "last_dispatched_at": latest.dispatched_at.isoformat()})
    rows.sort(key=lambda r: (-r["reports"], -r["tickets"], r["dedup_key"]))
    return rows[:limit]


def open_by_age(tickets: list[Ticket], now: datetime) -> dict:
    by_severity = {s: [0] * len(AGE_BUCKETS) for s in SEVERITIES}
    for t in tickets:
        if not t.is_open:
            continue
        age = now - t.dispatched_at
        slot = next(i for i, (_, upper) in enumerate(AGE_BUCKETS) if upper is None or age < upper)
        by_severity[t.severity.value][slot] += 1
    return {"buckets": [name for name, _ in AGE_BUCKETS], "by_severity": by_severity}


class StatsView(JsonView):
    async def allowed(self, request) -> None:
        who = await self.http.authenticate(request)
        if not who.reads_all:
            raise ApiError(403, "the leadership view is for the operations centre and the leadership")
        who.require(Can.read_tickets)  # an admin of the centre manages users, not tickets

    @property
    def stats(self) -> StatsStore:
        return StatsStore.beside(self.http.store)


class Stats(StatsView):
    async def get(self, request: web.Request) -> web.Response:
        await self.allowed(request)
        only_params(request.query, set())
        now = self.http.clock()
        zone = self.http.config.district.tz
        basically = self.http.config.routing.followup.basically_satisfied_counts
        raws = await self.stats.gauge_facts()
        windows = {}
        for days in WINDOWS_DAYS:
            start, end = now - timedelta(days=days), now + timedelta(seconds=1)
            rows = performance.gauges(raws, start, end, now, basically).rows
            windows[str(days)] = {"from": start.isoformat(), "to": end.isoformat(),
                                  "departments": [row.as_dict() for _, row in sorted(rows.items())]}
        today = now.astimezone(zone).date()
        days = [today - timedelta(days=n) for n in range(TREND_DAYS - 1, -1, -1)]
        trend = {"days": [d.isoformat() for d in days], **{rate: [] for rate in ("dispatched", *TREND_RATES)}}
        for d in days:
            start = datetime.combine(d, time(0), zone)
            figures = district_rates(raws, start, start + timedelta(days=1), now, basically)
            for name, value in figures.items():
                trend[name].append(value)
        hour_start = now.astimezone(zone).replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
        recent = await self.stats.dispatched(hour_start, now + timedelta(seconds=1))
        month = await self.stats.dispatched(now - timedelta(days=30), now + timedelta(seconds=1))
        open_now = await self.stats.many(await self.stats.open_ids())
        return self.json({
            "generated_at": now.isoformat(), "timezone": self.http.config.district.timezone,
            "performance": windows, "daily": trend, "hourly": hourly(recent, hour_start, zone),
            "hotspots": hotspots(month), "open_by_age": open_by_age(open_now, now),
        })


def _day(query, today: date) -> date:
    raw = query.get("date")
    if not raw:
        return today
    found = instants.day(raw)
    if isinstance(found, instants.BadTime):
        raise ApiError(400, "date must be a day YYYY-MM-DD, e.g. 2026-12-01" if found.problem is not
                       instants.TimeProblem.out_of_range else f"date must be a day {found.range_text}")
    return found


class DailyReport(StatsView):
    async def get(self, request: web.Request) -> web.Response:
        await self.allowed(request)
        only_params(request.query, {"date", "period"})
        return self.json(await self.report(request.query))

    async def report(self, query) -> dict:
        """The report of the day `date=` names (today by default) in the district's time zone: the calendar
        day (`period=day`, the default) or the duty officer's shift that starts that day (`period=shift`)."""
        now = self.http.clock()
        config = self.http.config
        zone = config.district.tz
        day = _day(query, now.astimezone(zone).date())
        period = query.get("period", "day")
        if period not in get_args(daily.Period):
            raise ApiError(400, "period must be day or shift")
        start = datetime.combine(day, time(0), zone)
        end = start + timedelta(days=1)
        if period == "shift":
            shift = daily.shift_of(config.district, day)
            if shift is None:
                raise ApiError(400, f"no duty officer's shift starts on {day.isoformat()}")
            start, end = shift
        if start > now:
            what = day.isoformat() if period == "day" else f"the shift of {day.isoformat()}"
            raise ApiError(400, f"{what} has not begun yet in {config.district.timezone}")
        pipeline = self.http.pipeline
        tickets = await self.stats.dispatched(start, end)
        rows = performance.gauges(await self.stats.gauge_facts(), start, end, now,
                                  config.routing.followup.basically_satisfied_counts).rows
        return daily.report(
            config.district, day=day, period=period, start=start, end=end, now=now, tickets=tickets,
            open_now=await self.stats.many(await self.stats.open_ids()), rows=rows,
            cap_records=pipeline.books.cap.all(), histories=pipeline.books.response.by_key(),
            hold=response.hold_of(config), handovers=await self.http.store.handovers(start, end),
            stretches=duty.shifts(config.district, start, end))


class DailyPdf(DailyReport):
    """The same report as an A4 PDF (handlers/daily_pdf.py), `lang=zh` (default) or `en`, as a download."""

    async def get(self, request: web.Request) -> aioweb.Response:
        await self.allowed(request)
        only_params(request.query, {"date", "period", "lang"})
        lang = request.query.get("lang", "zh")
        if lang not in ("zh", "en"):
            raise ApiError(400, "lang must be zh or en")
        report = await self.report(request.query)
        # Laid out in a thread: a storm's report takes a moment, and the worker's streams go on meanwhile.
        body = await asyncio.to_thread(daily_pdf.render, self.http.config.district, report, lang)
        suffix = ("-shift" if report["period"] == "shift" else "") + ("-en" if lang == "en" else "")
        name = f"daily-report-{report['date']}{suffix}.pdf"
        return aioweb.Response(body=body, content_type="application/pdf",
                               headers={"Content-Disposition": f'attachment; filename="{name}"'})


def place_json(place: recurring_places.Place) -> dict:
    return {"category": place.category.value, "lat": place.lat, "lon": place.lon,
            "rules": [r.value for r in place.rules], "count": place.count, "storms": place.storms,
            "open": place.open, "last_dates": list(place.last_dates), "departments": list(place.departments),
            "ticket_ids": list(place.ticket_ids), "last_opened_at": place.last_opened_at.isoformat()}


class Hotspots(StatsView):
    """The recurring places (高发点位) as of now, by rules.yaml `hotspots`; `category=` narrows them to one."""

    async def get(self, request: web.Request) -> web.Response:
        await self.allowed(request)
        only_params(request.query, {"category"})
        wanted = request.query.get("category")
        if wanted is not None and wanted not in Category.__members__:
            raise ApiError(400, f"category must be one of: {', '.join(Category.__members__)}")
        now = self.http.clock()
        config = self.http.config
        rules = config.rules.hotspots
        pipeline = self.http.pipeline
        storms = recurring_places.storms(pipeline.books.response.by_key(), response.hold_of(config),
                                         recurring_places.rainstorm_warnings(pipeline.books.cap.all()))
        stored = await self.stats.facts_by_id()
        facts = {ticket_id: performance.stored_facts(raw) for ticket_id, raw in stored.items()}
        places = recurring_places.recurring(recurring_places.sightings(facts), storms, rules, now, config.district.tz)
        over = [s for s in storms if s.end is not None and s.end <= now]
        return self.json({
            "generated_at": now.isoformat(), "timezone": config.district.timezone,
            "rules": {"radius_m": rules.radius_m, "min_count": rules.min_count, "days": rules.days,
                      "storms": rules.storms, "categories": [c.value for c in rules.categories]},
            "storms": [{"from": s.start.isoformat(), "to": s.end.isoformat()} for s in over[-rules.storms:]]
            if rules.storms else [],
            "places": [place_json(p) for p in places if wanted is None or p.category.value == wanted],
        })


class Seasons(StatsView):
    """Each category's reports by ISO week of the year and by hour of the day, in the district's time, over
    the history the store retains (handlers/seasons.py); `category=` narrows them to one."""

    async def get(self, request: web.Request) -> web.Response:
        await self.allowed(request)
        only_params(request.query, {"category"})
        wanted = request.query.get("category")
        if wanted is not None and wanted not in Category.__members__:
            raise ApiError(400, f"category must be one of: {', '.join(Category.__members__)}")
        config = self.http.config
        facts = [performance.stored_facts(raw) for raw in await self.stats.gauge_facts()]
        found = seasons.seasons(facts, config.district.tz, Category(wanted) if wanted else None)
        return self.json({
            "generated_at": self.http.clock().isoformat(), "timezone": config.district.timezone,
            "from": found.first.isoformat() if found.first else None,
            "to": found.last.isoformat() if found.last else None,
            "weeks": seasons.WEEKS, "hours": seasons.HOURS,
            "categories": [{"category": p.category.value, "total": p.total, "by_week": list(p.by_week),
                            "by_hour": list(p.by_hour)} for p in found.patterns],
        })


class StatsPage(web.View):
    async def get(self, request: web.Request):
        return pages.page("stats")


class DailyPage(web.View):
    async def get(self, request: web.Request):
        return pages.page("daily")


ROUTES = [
    ("/stats", "stats-page", StatsPage),
    ("/stats/daily", "daily-page", DailyPage),
    ("/api/stats", "stats", Stats),
    ("/api/stats/daily", "stats-daily", DailyReport),
    ("/api/stats/daily.pdf", "stats-daily-pdf", DailyPdf),
    ("/api/hotspots", "hotspots", Hotspots),
    ("/api/stats/seasons", "stats-seasons", Seasons),
]
