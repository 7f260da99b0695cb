"""The review (复盘) of a period: what came in, when each department moved, what was late. No I/O.

`review` gathers, from the records of [start, end):
- the timeline: the CAP warnings received and lowered and the response level's changes with who decided and
  why (the same lines as the daily report, handlers/daily.py), the plan runs started and stood down with their
  tasks' progress (handlers/plans.py), the first ticket of each category and every red ticket opened;
- the measures: the department, severity and district rows of handlers/performance.py `table` (the same
  function /api/performance and the stats page read: times from the reading to the ticket, to acceptance and to
  closure, overdue and late acceptances, escalations, preventive tickets), the notifications sent and
  failed from the notification log, and each preventive ticket with whether its place was reported again.

`level_periods` finds the response-level periods (from a level raised while none was in force until it is
stood down), each named by its start's UTC stamp, the `change_id` of `GET /api/reviews/level/{change_id}`.
Everything people read comes in Chinese (`text`) and English (`text_en`) at the district's local time with
display names.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from handlers import daily, opened, performance, plans
from handlers.geo import distance_m
from handlers.privacy import mask_personal
from handlers.wording import Lang, department_name, local_time, matcher_text
from schemas.config import District
from schemas.enums import Severity, TicketKind
from schemas.notify import LogEntry
from schemas.plans import PlanRun
from schemas.records import Ticket
from schemas.response import RANK, ResponseChange
from schemas.silences import Silence

STAMP = "%Y%m%dT%H%M%SZ"
_SEVERITY = {"zh": {"red": "红色", "orange": "橙色", "yellow": "黄色", "blue": "蓝色"},
             "en": {"red": "red", "orange": "orange", "yellow": "yellow", "blue": "blue"}}


def stamp(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime(STAMP)


# A review's id names what it reviews, so that its written parts (schemas/review.py) stay with it.
_REVIEW_ID = re.compile(r"^(?:level-(?P<change>\d{8}T\d{6}Z)|period-(?P<start>\d{8}T\d{6}Z)-(?P<end>\d{8}T\d{6}Z))$")


def period_review_id(start: datetime, end: datetime) -> str:
    return f"period-{stamp(start)}-{stamp(end)}"


def level_review_id(change_id: str) -> str:
    return f"level-{change_id}"


@dataclass(frozen=True)
class OfLevel:
    change_id: str


@dataclass(frozen=True)
class OfPeriod:
    start: datetime
    end: datetime


def parse_review_id(raw: str) -> OfLevel | OfPeriod | None:
    """What a review id names, or None when it names nothing (a malformed id, a period that ends before it starts)."""
    found = _REVIEW_ID.match(raw)
    if found is None:
        return None
    if found["change"]:
        return OfLevel(found["change"])
    try:
        start, end = (datetime.strptime(found[n], STAMP).replace(tzinfo=timezone.utc) for n in ("start", "end"))
    except ValueError:
        return None
    return OfPeriod(start, end) if start < end else None


@dataclass(frozen=True)
class LevelPeriod:
    """A stretch with a response level in force: `end` None while it still is."""

    change_id: str
    start: datetime
    end: datetime | None
    highest: str  # the most severe level of the stretch ("I" is the most severe)


def level_periods(district: District, histories: Mapping[str, list[ResponseChange]], hold: timedelta,
                  now: datetime) -> list[LevelPeriod]:
    """Every response-level period up to now, oldest first, from the level changes the daily report lists."""
    times = [c.at for changes in histories.values() for c in changes]
    if not times:
        return []
    # From just before the first change, so that the first level raised is itself a change.
    lines = daily.level_lines(district, histories, hold, min(times) - timedelta(seconds=1), now)["changes"]
    found: list[LevelPeriod] = []
    start: datetime | None = None
    highest = ""
    for line in lines:
        at = datetime.fromisoformat(line["at"])
        if line["level"] is not None and line["from_level"] is None:
            start, highest = at, line["level"]
        elif line["level"] is None and start is not None:
            found.append(LevelPeriod(stamp(start), start, at, highest))
            start = None
        elif line["level"] is not None and start is not None and RANK[line["level"]] > RANK[highest]:
            highest = line["level"]
    if start is not None:
        found.append(LevelPeriod(stamp(start), start, None, highest))
    return found


def _both(say) -> dict:
    return {"text": say("zh"), "text_en": say("en")}


def _run_lines(district: District, runs: Iterable[PlanRun], tickets: Mapping[str, Ticket], start: datetime,
               end: datetime, now: datetime) -> list[dict]:
    out = []
    for run in runs:
        found = [tickets[t] for t in run.tickets if t in tickets]
        progress = plans.progress(found, len(run.tickets), now)
        if start <= run.started_at < end:
            def said(lang: Lang, run=run, progress=progress) -> str:
                if lang == "zh":
                    return (f"{local_time(district, run.started_at, lang)} 启动预案「{run.name}」，任务"
                            f"{progress['total']}项，已完成{progress['done']}项，超时{progress['overdue']}项")
                return (f"{local_time(district, run.started_at, lang)} Plan “{run.name}” started: {progress['total']} "
                        f"tasks, {progress['done']} done, {progress['overdue']} overdue")
            out.append({"at": run.started_at.isoformat(), "kind": "plan_started", "run_id": run.run_id,
                        "plan_id": run.plan_id, "progress": progress, **_both(said)})
        if run.ended_at is not None and start <= run.ended_at < end:
            def ended(lang: Lang, run=run) -> str:
                reason = mask_personal(run.ended_reason)
                if lang == "zh":
                    return f"{local_time(district, run.ended_at, lang)} 预案「{run.name}」结束" + (f"：{reason}" if reason else "")
                return f"{local_time(district, run.ended_at, lang)} Plan “{run.name}” stood down" + (f": {reason}" if reason else "")
            out.append({"at": run.ended_at.isoformat(), "kind": "plan_ended", "run_id": run.run_id,
                        "plan_id": run.plan_id, **_both(ended)})
    return out


def _ticket_line(district: District, t: Ticket, kind: str) -> dict:
    def said(lang: Lang) -> str:
        where = department_name(district, t.department, lang)
        colour = _SEVERITY[lang][t.severity.value]
        title = mask_personal(t.title)
        if kind == "first_of_category":
            return (f"{local_time(district, t.dispatched_at, lang)} 本类首张工单（{colour}）：{title}，派给{where}"
                    if lang == "zh" else
                    f"{local_time(district, t.dispatched_at, lang)} First ticket of its kind ({colour}): {title}, to {where}")
        return (f"{local_time(district, t.dispatched_at, lang)} 红色工单：{title}，派给{where}" if lang == "zh" else
                f"{local_time(district, t.dispatched_at, lang)} Red ticket: {title}, to {where}")

    return {"at": t.dispatched_at.isoformat(), "kind": kind, "ticket_id": t.ticket_id, "category": t.category.value,
            "severity": t.severity.value, "department": t.department, **_both(said)}


def ticket_lines(district: District, tickets: Iterable[Ticket]) -> list[dict]:
    """The first ticket of each category, and every red ticket, in the order they were dispatched. A plan's
    tasks are work the centre sent (their run has its own line): listed as neither."""
    ordered = sorted(tickets, key=lambda t: (t.dispatched_at, t.ticket_id))
    seen: set = set()
    out = []
    for t in ordered:
        if t.kind is TicketKind.task:
            continue
        if t.category not in seen:
            seen.add(t.category)
            out.append(_ticket_line(district, t, "first_of_category"))
        if t.severity is Severity.red:
            out.append(_ticket_line(district, t, "red_opened"))
    return out


# The kinds of channel (schemas/notify.py ChannelType) as people call them.
CHANNEL_TYPES = {
    "dingtalk": ("钉钉群机器人", "DingTalk robot"), "dingtalk_card": ("钉钉互动卡片", "DingTalk card"),
    "wecom": ("企业微信群机器人", "WeCom robot"), "wecom_card": ("企业微信应用卡片", "WeCom card"),
    "feishu": ("飞书群机器人", "Feishu robot"), "feishu_card": ("飞书消息卡片", "Feishu card"),
    "webhook": ("Webhook", "Webhook"), "email": ("邮件", "Email"), "sms": ("短信", "SMS"),
}

# A delivery that took longer than this from its first attempt to its delivery counts as late.
LATE_DELIVERY_S = 60


def lateness(samples: list[float]) -> dict:
    """Deliveries' waits from first attempt to delivery: how many, median and longest (performance's
    summary of times), and how many took longer than LATE_DELIVERY_S."""
    found = performance.spread(samples)
    return {"delivered": found["count"], "median_s": found["median_s"], "max_s": found["max_s"],
            "over_60s": sum(s > LATE_DELIVERY_S for s in samples)}


def notification_counts(entries: Iterable[LogEntry]) -> dict:
    """Deliveries in the log: delivered (sent), failed (a send failed and none succeeded: given up or still
    retrying), of which given up; the failed attempts; muted ones; per channel and per channel type the same.
    `lateness`: for each delivered delivery, the seconds from its first entry to its `delivered` entry."""
    by_delivery: dict[str, list[LogEntry]] = {}
    for e in entries:
        by_delivery.setdefault(e.delivery_id, []).append(e)
    totals: Counter = Counter()
    channels: dict[str, Counter] = {}
    types: dict[str, Counter] = {}
    waits: dict[tuple[str, str], list[float]] = {}
    kinds: dict[str, str] = {}
    for found in by_delivery.values():
        found.sort(key=lambda e: e.at)
        results = {e.result for e in found}
        first = found[0]
        kinds[first.channel] = first.channel_type
        delivered = "delivered" in results
        failed = not delivered and bool(results & {"failed", "dead"})
        groups = (("", "", totals), ("channel", first.channel, channels.setdefault(first.channel, Counter())),
                  ("type", first.channel_type, types.setdefault(first.channel_type, Counter())))
        done = next((e.at for e in found if e.result == "delivered"), None)
        for group, key, counter in groups:
            counter["deliveries"] += 1
            counter["delivered"] += delivered
            counter["failed"] += failed
            counter["given_up"] += "dead" in results and not delivered
            counter["muted"] += results == {"muted"}
            counter["failed_attempts"] += sum(e.result == "failed" for e in found)
            mine = waits.setdefault((group, key), [])
            if done is not None:
                mine.append((done - first.at).total_seconds())
    names = ("deliveries", "delivered", "failed", "given_up", "failed_attempts", "muted")

    def row(counter: Counter, group: str, key: str) -> dict:
        return {**{n: counter[n] for n in names}, "lateness": lateness(waits.get((group, key), []))}

    return {**row(totals, "", ""),
            "by_channel": {c: {**row(counts, "channel", c), "channel_type": kinds[c]}
                           for c, counts in sorted(channels.items())},
            "by_channel_type": {t: {**row(counts, "type", t), "name": CHANNEL_TYPES[t][0], "name_en": CHANNEL_TYPES[t][1]}
                                for t, counts in sorted(types.items())}}


def preventive_lines(district: District, tickets: list[Ticket], radius_m: float) -> list[dict]:
    """Each preventive ticket of the period, and whether its place was reported again after it: a report (not
    a task nor another preventive ticket) of the same category within `radius_m` (rules.yaml hotspots), later
    in the period."""
    reports = [t for t in tickets if t.kind is TicketKind.incident]
    out = []
    for t in sorted((t for t in tickets if t.kind is TicketKind.preventive), key=lambda t: (t.dispatched_at, t.ticket_id)):
        again = [r.ticket_id for r in reports if r.category is t.category and r.dispatched_at > t.dispatched_at
                 and distance_m(t.lat, t.lon, r.lat, r.lon) <= radius_m]
        out.append({"ticket_id": t.ticket_id, "category": t.category.value, "department": t.department,
                    "dispatched_at": t.dispatched_at.isoformat(), "title": mask_personal(t.title),
                    "reported_again": again})
    return out


_MODE = {"zh": {"suppress": "屏蔽（不立案）", "quiet": "静默（立案不通知）"},
         "en": {"suppress": "suppressing silence (no ticket)", "quiet": "quiet silence (ticket, no notification)"}}


def silence_lines(district: District, silences: Iterable[Silence], tickets: list[Ticket],
                  entries: list[LogEntry], start: datetime, end: datetime,
                  suppressed: Mapping[str, int] | None = None) -> list[dict]:
    """Each silence in force at some time of [start, end) (a pending one deleted before it began never was),
    oldest first: who made it, why, its span and its matchers in words; and what it held back in the period:
    the incidents it kept from opening a ticket (`suppressed`, by silence id), the period's tickets it opened
    quiet (`silenced_by`: under a suppressing one, the red ones) and the `muted` log entries of those tickets."""
    suppressed = suppressed or {}
    out = []
    for silence in sorted(silences, key=lambda s: (s.starts_at, s.silence_id)):
        if not (silence.starts_at < silence.ends_at and silence.starts_at < end and silence.ends_at > start):
            continue
        held = sorted(t.ticket_id for t in tickets if t.silenced_by == silence.silence_id)
        muted = sum(e.result == "muted" and e.ticket_id in held for e in entries)
        kept = suppressed.get(silence.silence_id, 0)

        def said(lang: Lang, silence=silence, held=held, muted=muted, kept=kept) -> str:
            matchers = ("，" if lang == "zh" else ", ").join(
                matcher_text(district, m.name, m.value, m.is_regex, m.is_equal, lang) for m in silence.matchers)
            comment = mask_personal(silence.comment)
            span = (f"{local_time(district, silence.starts_at, lang)} 至 {local_time(district, silence.ends_at, lang)}"
                    if lang == "zh" else
                    f"{local_time(district, silence.starts_at, lang)} to {local_time(district, silence.ends_at, lang)}")
            if lang == "zh":
                held_back = (f"屏蔽事件 {kept} 起（未立案），红色事件照常立案并静默 {len(held)} 件"
                             if silence.mode == "suppress" else f"静默立案 {len(held)} 件")
                return (f"{mask_personal(silence.created_by)}设置{_MODE[lang][silence.mode]}，{span}，条件：{matchers}；"
                        f"原因：{comment}。期间{held_back}，静默通知 {muted} 条。")
            held_back = (f"{kept} incidents kept from opening a ticket, {len(held)} red tickets opened quiet"
                         if silence.mode == "suppress" else f"{len(held)} tickets opened quiet")
            return (f"{mask_personal(silence.created_by)} set a {_MODE[lang][silence.mode]}, {span}, matching "
                    f"{matchers}; why: {comment}. In the period: {held_back}, {muted} notifications muted.")

        out.append({"silence_id": silence.silence_id, "mode": silence.mode, "created_by": silence.created_by,
                    "created_at": silence.created_at.isoformat(), "starts_at": silence.starts_at.isoformat(),
                    "ends_at": silence.ends_at.isoformat(), "comment": mask_personal(silence.comment),
                    "matchers": [m.model_dump(mode="json") for m in silence.matchers],
                    "suppressed": kept, "tickets": held, "ticket_count": len(held), "muted": muted, **_both(said)})
    return out


def _part(district: District, t: Ticket) -> dict:
    return {"ticket_id": t.ticket_id, "title": mask_personal(t.title), "department": t.department,
            "department_name": department_name(district, t.department),
            "department_name_en": department_name(district, t.department, "en"),
            "category": t.category.value, "severity": t.severity.value, "dispatched_at": t.dispatched_at.isoformat()}


def compound_lines(district: District, tickets: list[Ticket], linked: Mapping[str, Ticket]) -> list[dict]:
    """The compound incidents of the period: the tickets a correlation rule (rules.yaml `correlations`,
    Ticket.related) linked, grouped per rule into the causes and effects that hang together (one waterlogging
    and the two jams it made are one group), in the order they began. A group needs one of its tickets in
    the period; `linked` holds the tickets from outside it that the period's are linked to."""
    known = {**linked, **{t.ticket_id: t for t in tickets}}
    pairs: set[tuple[str, str, str]] = set()  # (rule, cause, effect)
    for t in tickets:
        for link in t.related:
            pair = (t.ticket_id, link.ticket_id) if link.role == "effect" else (link.ticket_id, t.ticket_id)
            if all(x in known for x in pair):
                pairs.add((link.rule, *pair))
    # Union-find per rule: a ticket is one node of its rule's groups.
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(node: tuple[str, str]) -> tuple[str, str]:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    for rule, cause, effect in pairs:
        parent[root((rule, effect))] = root((rule, cause))
    groups: dict[tuple[str, str], tuple[set, set]] = {}
    for rule, cause, effect in pairs:
        causes, effects = groups.setdefault(root((rule, cause)), (set(), set()))
        causes.add(cause)
        effects.add(effect)
    out = []
    for (rule, _), (causes, effects) in groups.items():
        def ordered(ids: set) -> list[Ticket]:
            return sorted((known[i] for i in ids), key=lambda t: (t.dispatched_at, t.ticket_id))

        cause_tickets, effect_tickets = ordered(causes), ordered(effects)

        def said(lang: Lang, rule=rule, cause_tickets=cause_tickets, effect_tickets=effect_tickets) -> str:
            def one(t: Ticket) -> str:
                where = department_name(district, t.department, lang)
                return (f"{t.ticket_id} {mask_personal(t.title)}（{where}，{local_time(district, t.dispatched_at, lang)}）"
                        if lang == "zh" else
                        f"{t.ticket_id} {mask_personal(t.title)} ({where}, {local_time(district, t.dispatched_at, lang)})")
            joined = "、" if lang == "zh" else ", "
            return (f"{rule}{'：' if lang == 'zh' else ': '}{joined.join(map(one, cause_tickets))} → "
                    f"{joined.join(map(one, effect_tickets))}")

        began = min(t.dispatched_at for t in cause_tickets + effect_tickets)
        out.append({"rule": rule, "at": began.isoformat(),
                    "causes": [_part(district, t) for t in cause_tickets],
                    "effects": [_part(district, t) for t in effect_tickets], **_both(said)})
    out.sort(key=lambda g: (datetime.fromisoformat(g["at"]), g["rule"], g["causes"][0]["ticket_id"]))
    return out


def map_points(tickets: list[Ticket]) -> list[dict]:
    """The period's tickets as points for the map (its plan's tasks too: they are where the work was), in the
    order they were dispatched."""
    return [{"ticket_id": t.ticket_id, "lat": t.lat, "lon": t.lon, "severity": t.severity.value, "kind": t.kind.value,
             "category": t.category.value, "title": mask_personal(t.title), "department": t.department,
             "dispatched_at": t.dispatched_at.isoformat()}
            for t in sorted(tickets, key=lambda t: (t.dispatched_at, t.ticket_id))]


# Periods longer than this are charted by the day, not by the hour (a month is 744 hours: no chart reads that).
HOURLY_UP_TO = timedelta(hours=72)


def opened_chart(district: District, tickets: list[Ticket], start: datetime, end: datetime) -> dict:
    """The tickets opened in each hour of the period (each day of a longer one), from the hour (day) it starts
    in, district time, by severity (handlers/opened.py, as the stats page counts its hours)."""
    local = start.astimezone(district.tz)
    if end - start <= HOURLY_UP_TO:
        slot, width, first = "hour", timedelta(hours=1), local.replace(minute=0, second=0, microsecond=0)
    else:
        slot, width, first = "day", timedelta(days=1), local.replace(hour=0, minute=0, second=0, microsecond=0)
    count = -(-(end - first) // width)
    found = opened.per_slot(tickets, first, count, width)
    starts = [s.astimezone(district.tz) for s in found["starts"]]

    def label(n: int, at: datetime, lang: Lang) -> str:
        if slot == "day":
            return f"{at.month}月{at.day}日" if lang == "zh" else f"{at.day} {local_time(district, at, 'en').split()[1]}"
        if n == 0 or at.hour == 0:
            return local_time(district, at, lang)
        return f"{at.hour}时" if lang == "zh" else f"{at:%H:%M}"

    return {"slot": slot, "starts": [s.isoformat() for s in starts],
            "labels": [label(n, s, "zh") for n, s in enumerate(starts)],
            "labels_en": [label(n, s, "en") for n, s in enumerate(starts)], "by_severity": found["by_severity"]}


def measures(district: District, tickets: Iterable[Ticket], start: datetime, end: datetime, now: datetime,
             basically_counts: bool) -> dict:
    """The period's rows from handlers/performance.py: the whole district, per severity and per department."""
    facts = [performance.facts_of(t) for t in tickets]
    span = (start.timestamp(), end.timestamp(), now.timestamp(), basically_counts)
    district_row = performance.table(facts, *span, by="district").get(performance.ALL)
    severities = performance.table(facts, *span, by="severity")
    departments = performance.table(facts, *span)
    return {
        "district": district_row.as_dict() if district_row else None,
        "severities": [severities[s.value].as_dict() for s in Severity if s.value in severities],
        "departments": [{**row.as_dict(), "name": department_name(district, d), "name_en": department_name(district, d, "en")}
                        for d, row in sorted(departments.items())],
    }


def review(district: District, *, start: datetime, end: datetime, now: datetime, tickets: Iterable[Ticket],
           cap_records: Iterable, histories: Mapping[str, list[ResponseChange]], hold: timedelta,
           runs: Iterable[PlanRun], run_tickets: Mapping[str, Ticket], notifications: Iterable[LogEntry],
           basically_counts: bool = True, radius_m: float = 100.0, silences: Iterable[Silence] = (),
           suppressed: Mapping[str, int] | None = None, linked: Mapping[str, Ticket] | None = None) -> dict:
    """The review of [start, end) as of `now`: tickets are those dispatched in the period (as they stand now),
    level changes those of [start, end]; `silences` every silence known (the pipeline's mirror), `suppressed`
    how many incidents received in the period each kept from opening a ticket; `linked` the tickets outside
    the period that the period's are linked to by a correlation rule."""
    tickets = [t for t in tickets if start <= t.dispatched_at < end]
    entries = [e for e in notifications if start <= e.at < end]
    # The level changes at both ends too: a level period's review starts with its raise and ends with its
    # stand-down; `level_at_start` is the level in force just before.
    instant = timedelta(microseconds=1)
    levels = daily.level_lines(district, histories, hold, start - instant, min(end, now) + instant)
    warnings = daily.warning_lines(district, cap_records, start, end)
    timeline = [{**w, "kind": "warning"} for w in warnings]
    timeline += [{**c, "kind": "level"} for c in levels["changes"]]
    timeline += _run_lines(district, runs, run_tickets, start, end, now)
    timeline += ticket_lines(district, tickets)
    # Stable order: a warning before the level it moved, before the plan it started, before the tickets.
    order = {"warning": 0, "level": 1, "plan_started": 2, "plan_ended": 2, "first_of_category": 3, "red_opened": 4}
    timeline.sort(key=lambda line: (datetime.fromisoformat(line["at"]), order[line["kind"]]))
    return {
        "from": start.isoformat(), "to": end.isoformat(), "generated_at": now.isoformat(),
        "timezone": district.timezone,
        "period_text": f"{local_time(district, start)} 至 {local_time(district, end)}",
        "period_text_en": f"{local_time(district, start, 'en')} to {local_time(district, end, 'en')}",
        "level_at_start": levels["at_start"],
        "timeline": timeline,
        "measures": measures(district, tickets, start, end, now, basically_counts),
        "notifications": notification_counts(entries),
        "silences": silence_lines(district, silences, tickets, entries, start, end, suppressed),
        "compound": compound_lines(district, tickets, linked or {}),
        "points": map_points(tickets),
        "opened": opened_chart(district, tickets, start, end),
        "preventive": preventive_lines(district, tickets, radius_m),
    }
