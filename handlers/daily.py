"""The daily duty report (值班日报): one duty day of the district (or one officer's shift) as a leader signs it.
No I/O.

`report` gathers what the day's document says: who was on duty, the weather warnings and the
emergency-response levels with their times, the red and orange events with what was done and by whom,
the tickets that missed a deadline, the open red and orange items handed over, the departments' rates
and the handover notes. Everything people read comes with its words in Chinese (`text`) and English
(`text_en`) at the district's local time with display names (handlers/wording.py), so the page and the
PDF (handlers/daily_pdf.py) say the same; the record's own fields stay beside them for programs.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Literal

from handlers import duty
from handlers import response as levels
from handlers.duty import OnDuty
from handlers.privacy import mask_personal
from handlers.wording import Lang, history_text, local_time
from schemas.cap import CapRecord
from schemas.config import District
from schemas.enums import Severity, Source, TicketStatus
from schemas.records import HistoryKind, Ticket
from schemas.response import MANUAL, ResponseChange

# A report covers a calendar day (00:00 to 24:00) or the duty officer's shift that starts on that day.
Period = Literal["day", "shift"]
SEVERITIES = [s.value for s in Severity]
SOURCES = [s.value for s in Source]
EVENT_SEVERITIES = (Severity.red, Severity.orange)
_EVENT_RANK = {Severity.red: 0, Severity.orange: 1}
# Open items beyond these many are counted, not listed: the next shift opens the board for the rest.
OPEN_ITEMS_LISTED = 60

_KIND = {"zh": {"typhoon": "台风", "rainstorm": "暴雨"}, "en": {"typhoon": "typhoon", "rainstorm": "rainstorm"}}
_COLOUR = {"zh": {Severity.red: "红色", Severity.orange: "橙色", Severity.yellow: "黄色", Severity.blue: "蓝色"},
           "en": {Severity.red: "red", Severity.orange: "orange", Severity.yellow: "yellow", Severity.blue: "blue"}}
_LEVEL = {"zh": {"I": "Ⅰ级", "II": "Ⅱ级", "III": "Ⅲ级", "IV": "Ⅳ级"},
          "en": {"I": "level I", "II": "level II", "III": "level III", "IV": "level IV"}}


def _both(say) -> dict:
    """{"text": ..., "text_en": ...} from a function of the language."""
    return {"text": say("zh"), "text_en": say("en")}


# What happened to a warning: a CAP Alert issues it, an Update changes it, a Cancel lifts it, and its signal is
# lowered when it expires without one.
Step = Literal["issued", "changed", "cancelled", "expired"]
_STEP_OF: dict[str, Step] = {"Alert": "issued", "Update": "changed", "Cancel": "cancelled"}


def warning_lines(district: District, records: Iterable[CapRecord], start: datetime, end: datetime) -> list[dict]:
    """The Actual typhoon and rainstorm warnings received in [start, end), and those lowered on expiry then,
    oldest first (an alert's expiry after its own issue when both fall at one time)."""
    lines: list[tuple[datetime, int, str, CapRecord, Step]] = []
    for r in records:
        if r.status != "Actual" or r.kind is None or r.msg_type not in _STEP_OF:
            continue
        if start <= r.received_at < end:
            lines.append((r.received_at, 0, r.key, r, _STEP_OF[r.msg_type]))
        if r.lowered_at is not None and start <= r.lowered_at < end and r.msg_type != "Cancel":
            lines.append((r.lowered_at, 1, r.key, r, "expired"))
    lines.sort(key=lambda line: line[:3])
    return [{"at": at.isoformat(), "kind": r.kind, "step": step,
             "severity": r.severity.value if r.severity else None, "headline": mask_personal(r.headline),
             "expires": r.expires.isoformat() if r.expires else None,
             **_both(lambda lang, at=at, r=r, step=step: _warning(district, at, r, step, lang))}
            for at, _, _, r, step in lines]


def _warning(district: District, at: datetime, r: CapRecord, step: Step, lang: Lang) -> str:
    zh = lang == "zh"
    kind = _KIND[lang][r.kind]
    colour = _COLOUR[lang][r.severity] if r.severity else ""
    until = ""
    if r.expires is not None and step in ("issued", "changed"):
        until = f"（至 {local_time(district, r.expires, lang)}）" if zh else f" (until {local_time(district, r.expires, lang)})"
    if step == "cancelled":
        said = f"解除{kind}预警" if zh else f"{kind.capitalize()} warning cancelled"
    elif step == "expired":
        said = f"{kind}{colour}预警到期" if zh else f"{kind.capitalize()} {colour} warning expired"
    elif step == "changed":
        said = f"{kind}预警调整为{colour}{until}" if zh else f"{kind.capitalize()} warning changed to {colour}{until}"
    else:
        said = f"发布{kind}{colour}预警{until}" if zh else f"{kind.capitalize()} {colour} warning issued{until}"
    # The sender's own headline, in its words, when it says more than the kind and colour.
    if zh and r.headline and step != "expired":
        said = f"{said}：{mask_personal(r.headline)}"
    return f"{local_time(district, at, lang)} {said}"


def level_lines(district: District, histories: Mapping[str, list[ResponseChange]], hold: timedelta,
                start: datetime, end: datetime) -> dict:
    """The emergency-response level in force when the day began and each change of it in [start, end):
    the level handlers/response.py computes (the most severe of every trigger's), at each instant a
    trigger's change or the end of its hold could change it."""
    instants = {start}
    for key, changes in histories.items():
        for span in levels.spans(key, changes, hold):
            instants.update(t for t in (span.start, span.end) if t is not None and start < t < end)
        instants.update(c.at for c in changes if start < c.at < end)
    before = levels.in_force(histories, start, hold)
    lines, current = [], before
    for at in sorted(instants - {start}):
        found = levels.in_force(histories, at, hold)
        if (found and found.level) == (current and current.level):
            continue
        lines.append(_level_line(district, at, current, found, histories, start, end))
        current = found
    return {"at_start": before.level if before else None, "changes": lines}


def _level_line(district: District, at: datetime, old, new, histories, start: datetime, end: datetime) -> dict:
    # Who decided: the centre's or the leadership's own change at that instant, else the rules (自动).
    manual = next((c for c in histories.get(MANUAL, []) if c.at == at), None)

    def say(lang: Lang) -> str:
        zh = lang == "zh"
        if new is None:
            what = "解除应急响应" if zh else "Emergency response stood down"
        elif old is None:
            what = (f"启动{_LEVEL[lang][new.level]}应急响应" if zh
                    else f"Level {new.level} emergency response started")  # not capitalize(): it lowers "III"
        else:
            raised = levels.RANK[new.level] > levels.RANK[old.level]
            what = (f"应急响应由{_LEVEL[lang][old.level]}{'提升' if raised else '调整'}为{_LEVEL[lang][new.level]}" if zh
                    else f"Emergency response {'raised' if raised else 'changed'} from {_LEVEL[lang][old.level]} "
                         f"to {_LEVEL[lang][new.level]}")
        if manual is not None:
            who = mask_personal(manual.by)
            reason = mask_personal(manual.reason)
            how = f"（{who}决定：{reason}）" if zh else f" (decided by {who}: {reason})"
        else:
            how = "（按响应规则自动）" if zh else " (automatic, by the response rules)"
        return f"{local_time(district, at, lang)} {what}{how}"

    return {"at": at.isoformat(), "from_level": old.level if old else None, "level": new.level if new else None,
            "manual": manual is not None, **_both(say)}


def shift_of(district: District, day: date) -> tuple[datetime, datetime] | None:
    """The duty officer's shift that starts on `day` (local): the period of a shift's report, e.g. 08:30 to
    08:30 the next day. None when the roster starts none that day."""
    start = datetime.combine(day, time(0), district.tz)
    found = [s for s in duty.shifts(district, start, start + timedelta(days=1))
             if s.role == "officer" and s.start.astimezone(district.tz).date() == day]
    return (found[0].start, found[0].end) if found else None


def handling(district: District, t: Ticket) -> dict:
    """A ticket as the report lists it: its course in words (handlers/wording.py), no personal data."""
    return {
        "ticket_id": t.ticket_id, "title": mask_personal(t.title), "source": t.source.value, "severity": t.severity.value,
        "category": t.category.value, "community": t.community, "department": t.department, "status": t.status.value,
        "escalation": t.escalation.value, "occurrences": t.occurrences,
        **{f: (getattr(t, f).isoformat() if getattr(t, f) else None)
           for f in ("dispatched_at", "accept_due", "accepted_at", "resolve_due", "resolved_at", "closed_at")},
        "history": [{"at": h.at.isoformat(), "by": mask_personal(h.by), "kind": h.kind.value,
                     "note": mask_personal(h.note), "text": history_text(district, h),
                     "text_en": history_text(district, h, "en")}
                    for h in t.history if h.kind is not HistoryKind.occurrence],
    }


def overdue(t: Ticket, now: datetime) -> list[str]:
    """The deadlines a ticket missed ("accept", "resolve"), as of `now`."""
    missed = []
    if (t.accepted_at > t.accept_due) if t.accepted_at is not None else (t.status is TicketStatus.dispatched and t.accept_due < now):
        missed.append("accept")
    if (t.resolved_at > t.resolve_due) if t.resolved_at is not None else (t.is_open and t.resolve_due < now):
        missed.append("resolve")
    return missed


def open_items(district: District, candidates: Iterable[Ticket], end: datetime, now: datetime) -> dict:
    """The red and orange tickets still to be done when the day ended (or now, for today): what the
    next shift takes over, most severe and oldest first."""
    cut = min(end, now)
    seen: dict[str, Ticket] = {}
    for t in candidates:
        seen.setdefault(t.ticket_id, t)
    still = [t for t in seen.values() if t.severity in EVENT_SEVERITIES and t.dispatched_at < cut
             and (t.resolved_at is None or t.resolved_at >= cut) and (t.closed_at is None or t.closed_at >= cut)]
    still.sort(key=lambda t: (_EVENT_RANK[t.severity], t.dispatched_at, t.ticket_id))
    return {"total": len(still), "tickets": [{
        "ticket_id": t.ticket_id, "title": mask_personal(t.title), "severity": t.severity.value,
        "community": t.community, "department": t.department, "status": t.status.value,
        "escalation": t.escalation.value, "dispatched_at": t.dispatched_at.isoformat(),
        "accept_due": t.accept_due.isoformat(), "resolve_due": t.resolve_due.isoformat(),
        "missed": overdue(t, cut),
        **_both(lambda lang, t=t: _open_state(district, t, cut, lang)),
    } for t in still[:OPEN_ITEMS_LISTED]]}


def _open_state(district: District, t: Ticket, cut: datetime, lang: Lang) -> str:
    """Where an open item stands, as the next shift needs it: its next deadline, and whether it passed."""
    zh = lang == "zh"
    if t.accepted_at is None or t.accepted_at >= cut:
        due, stage = t.accept_due, ("签收" if zh else "accept")
    else:
        due, stage = t.resolve_due, ("办结" if zh else "resolve")
    late = due < cut
    if zh:
        return f"{stage}时限 {local_time(district, due, lang)}{'，已超时' if late else ''}"
    return f"{stage} by {local_time(district, due, lang)}{', overdue' if late else ''}"


def handover_lines(district: District, records: Iterable[dict]) -> list[dict]:
    """The day's shift handovers (POST /api/duty/handover): when, who to whom, the note and the count of
    open red and orange tickets handed over."""
    out = []
    for h in records:
        at = datetime.fromisoformat(h["at"])
        names = {side: " / ".join(mask_personal(p["name"]) for p in (h[side].get("officer"), h[side].get("leader")) if p)
                 for side in ("outgoing", "incoming")}

        def say(lang: Lang, at=at, h=h, names=names) -> str:
            note = mask_personal(h.get("note") or "").strip()
            if lang == "zh":
                text = f"{local_time(district, at, lang)} {names['outgoing'] or '—'} 交班给 {names['incoming'] or '—'}，" \
                       f"在办红色、橙色工单 {h['open_total']} 件"
                return f"{text}。交班说明：{note}" if note else text
            text = (f"{local_time(district, at, lang)} {names['outgoing'] or '—'} handed over to "
                    f"{names['incoming'] or '—'}, {h['open_total']} red and orange tickets open")
            return f"{text}. Note: {note}" if note else text

        out.append({"handover_id": h["handover_id"], "at": h["at"], "by": mask_personal(h["by"]),
                    "note": mask_personal(h.get("note") or ""), "open_total": h["open_total"],
                    "outgoing": names["outgoing"], "incoming": names["incoming"], **_both(say)})
    return out


def duty_of(stretches: Iterable[OnDuty]) -> dict:
    """The day's 值班员 (officer) and 带班领导 (leader), each with the local times of their stretch."""
    out: dict[str, list[dict]] = {"officer": [], "leader": []}
    for s in stretches:
        out.setdefault(s.role, []).append({"member_id": s.member_id, "name": mask_personal(s.name),
                                           "from": s.start.isoformat(), "to": s.end.isoformat()})
    return out


def counts(tickets: list[Ticket]) -> dict:
    matrix = {s: {v: 0 for v in SEVERITIES} for s in SOURCES}
    reports = Counter()
    for t in tickets:
        matrix[t.source.value][t.severity.value] += 1
        reports[t.source.value] += t.occurrences
    return {
        "total": len(tickets),
        "by_source": {s: sum(matrix[s].values()) for s in SOURCES},
        "by_severity": {v: sum(matrix[s][v] for s in SOURCES) for v in SEVERITIES},
        "matrix": matrix,
        "reports_by_source": {s: reports[s] for s in SOURCES},
    }


def report(district: District, *, day: date, period: Period, start: datetime, end: datetime, now: datetime, tickets: list[Ticket],
           open_now: Iterable[Ticket], rows: dict, cap_records: Iterable[CapRecord],
           histories: Mapping[str, list[ResponseChange]], hold: timedelta, handovers: Iterable[dict],
           stretches: Iterable[OnDuty]) -> dict:
    events = sorted((t for t in tickets if t.severity in EVENT_SEVERITIES),
                    key=lambda t: (_EVENT_RANK[t.severity], t.dispatched_at, t.ticket_id))
    late = sorted(((t, overdue(t, now)) for t in tickets), key=lambda p: (p[0].dispatched_at, p[0].ticket_id))
    return {
        "date": day.isoformat(), "period": period, "from": start.isoformat(), "to": end.isoformat(),
        "generated_at": now.isoformat(), "timezone": district.timezone,
        "duty": duty_of(stretches),
        "warnings": warning_lines(district, cap_records, start, end),
        # Up to now for a period still going on: a trigger's hold ends in the future unless a reading renews it.
        "response": level_lines(district, histories, hold, start, min(end, now)),
        "counts": counts(tickets),
        "events": [handling(district, t) for t in events],
        "overdue": [{**handling(district, t), "missed": missed} for t, missed in late if missed],
        "open_items": open_items(district, [*tickets, *open_now], end, now),
        "departments": [row.as_dict() for _, row in sorted(rows.items())],
        "handovers": handover_lines(district, handovers),
    }
