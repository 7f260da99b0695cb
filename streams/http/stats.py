"""The leadership view (/stats) and the daily duty report (值班日报, /stats/daily), for the operations
centre and the district leadership.

`GET /api/stats` gives every chart's figures in one answer; `GET /api/stats/daily?date=` the report of
one day in the district's time zone. The department rates come from the gauge facts through
handlers.performance exactly as `/api/performance` computes them, so a chart and the API agree.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from datetime import date, datetime, time, timedelta

from faust import web

from handlers import performance
from handlers.permissions import Can
from handlers.privacy import mask_phones
from schemas.enums import Severity, Source
from schemas.records import Ticket
from streams.http.api import ApiError, JsonView, only_params
from streams.http.board import _static
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
    hours = [(start + timedelta(hours=h)).astimezone(zone) for h in range(HOURS)]
    by_source = {s: [0] * HOURS for s in SOURCES}
    by_severity = {s: [0] * HOURS for s in SEVERITIES}
    for t in tickets:
        slot = int((t.dispatched_at - start) // timedelta(hours=1))
        if 0 <= slot < HOURS:
            by_source[t.source.value][slot] += 1
            by_severity[t.severity.value][slot] += 1
    return {"hours": [h.isoformat() for h in hours], "by_source": by_source, "by_severity": by_severity}


def hotspots(tickets: list[Ticket], limit: int = HOTSPOTS) -> list[dict]:
    """The places that keep coming back: tickets grouped by dedup key, most reports first."""
    groups: dict[str, list[Ticket]] = defaultdict(list)
    for t in tickets:
        groups[t.dedup_key].append(t)
    rows = []
    for key, group in groups.items():
        latest = max(group, key=lambda t: t.dispatched_at)
        rows.append({"dedup_key": key, "title": mask_phones(latest.title), "community": latest.community,
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


def handling(t: Ticket) -> dict:
    """A ticket as the daily report lists it: its course, no personal data."""
    return {
        "ticket_id": t.ticket_id, "title": mask_phones(t.title), "source": t.source.value, "severity": t.severity.value,
        "category": t.category.value, "community": t.community, "department": t.department, "status": t.status.value,
        "escalation": t.escalation.value, "occurrences": t.occurrences,
        **{f: (getattr(t, f).isoformat() if getattr(t, f) else None)
           for f in ("dispatched_at", "accept_due", "accepted_at", "resolve_due", "resolved_at", "closed_at")},
        "history": [{"at": h.at.isoformat(), "by": mask_phones(h.by), "action": h.action, "note": mask_phones(h.note)}
                    for h in t.history if h.action != "occurrence"],
    }


def overdue(t: Ticket, now: datetime) -> list[str]:
    """The deadlines a ticket missed ("accept", "resolve"), as of `now`."""
    missed = []
    if (t.accepted_at > t.accept_due) if t.accepted_at is not None else (t.status.value == "dispatched" and t.accept_due < now):
        missed.append("accept")
    if (t.resolved_at > t.resolve_due) if t.resolved_at is not None else (t.is_open and t.resolve_due < now):
        missed.append("resolve")
    return missed


def daily_report(tickets: list[Ticket], rows: dict, day: date, start: datetime, end: datetime, now: datetime) -> dict:
    matrix = {s: {v: 0 for v in SEVERITIES} for s in SOURCES}
    reports = Counter()
    for t in tickets:
        matrix[t.source.value][t.severity.value] += 1
        reports[t.source.value] += t.occurrences
    red = sorted((t for t in tickets if t.severity is Severity.red), key=lambda t: (t.dispatched_at, t.ticket_id))
    late = sorted(((t, overdue(t, now)) for t in tickets), key=lambda p: (p[0].dispatched_at, p[0].ticket_id))
    return {
        "date": day.isoformat(), "from": start.isoformat(), "to": end.isoformat(), "generated_at": now.isoformat(),
        "counts": {
            "total": len(tickets),
            "by_source": {s: sum(matrix[s].values()) for s in SOURCES},
            "by_severity": {v: sum(matrix[s][v] for s in SOURCES) for v in SEVERITIES},
            "matrix": matrix,
            "reports_by_source": {s: reports[s] for s in SOURCES},
        },
        "red": [handling(t) for t in red],
        "overdue": [{**handling(t), "missed": missed} for t, missed in late if missed],
        "departments": [row.as_dict() for _, row in sorted(rows.items())],
    }


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
        return await self.guarded(self._get, request)

    async def _get(self, request: web.Request) -> web.Response:
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
    try:
        return date.fromisoformat(raw) if len(raw) == 10 else _bad_date()
    except ValueError:
        return _bad_date()


def _bad_date():
    raise ApiError(400, "date must be a day YYYY-MM-DD, e.g. 2026-12-01")


class DailyReport(StatsView):
    async def get(self, request: web.Request) -> web.Response:
        return await self.guarded(self._get, request)

    async def _get(self, request: web.Request) -> web.Response:
        await self.allowed(request)
        only_params(request.query, {"date"})
        now = self.http.clock()
        zone = self.http.config.district.tz
        day = _day(request.query, now.astimezone(zone).date())
        start = datetime.combine(day, time(0), zone)
        end = start + timedelta(days=1)
        if start > now:
            raise ApiError(400, f"{day.isoformat()} has not begun yet in {self.http.config.district.timezone}")
        tickets = await self.stats.dispatched(start, end)
        rows = performance.gauges(await self.stats.gauge_facts(), start, end, now,
                                  self.http.config.routing.followup.basically_satisfied_counts).rows
        return self.json(daily_report(tickets, rows, day, start, end, now))


class StatsPage(web.View):
    async def get(self, request: web.Request):
        return _static("stats.html")


class DailyPage(web.View):
    async def get(self, request: web.Request):
        return _static("daily.html")


ROUTES = [
    ("/stats", "stats-page", StatsPage),
    ("/stats/daily", "daily-page", DailyPage),
    ("/api/stats", "stats", Stats),
    ("/api/stats/daily", "stats-daily", DailyReport),
]
