"""History entries carry their meaning as a kind (schemas.records.HistoryKind). Entries written before they had
one, already on the topics and in Redis, are read with the kind their display text meant; no reader decides
by the text."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from handlers import escalation, notify, performance, wording
from schemas.records import HistoryEntry, HistoryKind, Ticket

K = HistoryKind
ROOT = Path(__file__).resolve().parents[2]
AT = "2026-12-06T06:00:00Z"

# A ticket as the previous version wrote it: every action text it used, no kinds.
OLD_HISTORY = [
    {"at": AT, "by": "pipeline", "action": "dispatch", "note": "flood_control", "event_id": "", "user": None},
    {"at": AT, "by": "pipeline", "action": "response", "note": "II级应急响应 (manual): 时限 x0.5", "event_id": "",
     "user": None},
    {"at": "2026-12-06T06:01:00Z", "by": "pipeline", "action": "occurrence", "note": "flood-2", "event_id": "",
     "user": None},
    {"at": "2026-12-06T06:01:00Z", "by": "pipeline", "action": "severity_raised", "note": "orange -> red",
     "event_id": "flood-2", "user": None},
    {"at": "2026-12-06T06:20:00Z", "by": "pipeline", "action": "催办 reminder",
     "note": "accept due 2026-12-06T06:30:00.512000+00:00", "event_id": "esc-accept-reminded-1", "user": None},
    {"at": "2026-12-06T06:25:00Z", "by": "张值班 (ops_centre)", "action": "comment", "note": "已知悉",
     "event_id": "api-1", "user": {"user_id": "zhang", "name": "张值班", "department": "ops_centre",
                                   "role": "duty_officer"}},
    {"at": "2026-12-06T06:26:00Z", "by": "flood_control", "action": "accept", "note": "", "event_id": "api-2",
     "user": None},
    {"at": "2026-12-06T06:27:00Z", "by": "flood_control", "action": "extend", "note": "等泵车", "event_id": "api-3",
     "user": None},
    {"at": "2026-12-06T06:28:00Z", "by": "ops_centre", "action": "extension approved until 2026-12-07T06:00:00+00:00",
     "note": "", "event_id": "api-4", "user": None},
    {"at": "2026-12-06T06:29:00Z", "by": "flood_control", "action": "resolve", "note": "已抽排", "event_id": "api-5",
     "user": None},
    {"at": "2026-12-06T06:30:00Z", "by": "ops_centre", "action": "rework", "note": "仍有积水", "event_id": "api-6",
     "user": None},
    {"at": "2026-12-06T06:31:00Z", "by": "ops_centre", "action": "redispatch",
     "note": "flood_control -> city_management: 城管处理", "event_id": "api-7", "user": None},
    {"at": "2026-12-06T06:32:00Z", "by": "ops_centre", "action": "redispatch flood_control -> city_management",
     "note": "", "event_id": "api-8", "user": None},
    {"at": "2026-12-06T06:33:00Z", "by": "ops_centre", "action": "extension rejected", "note": "", "event_id": "api-9",
     "user": None},
    {"at": "2026-12-06T06:34:00Z", "by": "ops_centre", "action": "verified and closed", "note": "",
     "event_id": "api-10", "user": None},
    {"at": "2026-12-06T06:35:00Z", "by": "ops_centre", "action": "回访 followup: 不满意, 发回重办 sent back",
     "note": "", "event_id": "api-11", "user": None},
    {"at": "2026-12-06T06:36:00Z", "by": "pipeline", "action": "related",
     "note": "rain_waterlogging: 起因 cause T-9", "event_id": "corr-1", "user": None},
    {"at": "2026-12-06T06:37:00Z", "by": "pipeline", "action": "督办 escalation", "note": "resolve due 2026-12-06T08:00:00+00:00",
     "event_id": "esc-2", "user": None},
    {"at": "2026-12-06T06:38:00Z", "by": "pipeline", "action": "通报 report", "note": "resolve due 2026-12-06T08:00:00+00:00",
     "event_id": "esc-3", "user": None},
    {"at": "2026-12-06T06:39:00Z", "by": "ops_centre", "action": "reopen", "note": "再次反映", "event_id": "api-12",
     "user": None},
    {"at": "2026-12-06T06:40:00Z", "by": "ops_centre", "action": "return", "note": "", "event_id": "api-13", "user": None},
    {"at": "2026-12-06T06:41:00Z", "by": "pipeline", "action": "recurred", "note": "new ticket T-10",
     "event_id": "flood-3", "user": None},
    {"at": "2026-12-06T06:42:00Z", "by": "pipeline", "action": "silenced", "note": "opened quietly under silence s",
     "event_id": "s", "user": None},
    {"at": "2026-12-06T06:43:00Z", "by": "pipeline", "action": "source_cleared", "note": "", "event_id": "c",
     "user": None},
    {"at": "2026-12-06T06:44:00Z", "by": "pipeline", "action": "device_recovered", "note": "", "event_id": "d",
     "user": None},
]
KINDS = [K.dispatch, K.response, K.occurrence, K.severity_raised, K.reminded, K.acknowledged, K.accept,
         K.extension_requested, K.extension_approved, K.resolve, K.rework, K.redispatch, K.redispatch,
         K.extension_rejected, K.closed, K.followup, K.related, K.escalated, K.reported, K.reopen, K.return_,
         K.recurred, K.silenced, K.source_cleared, K.device_recovered]


def old_ticket() -> dict:
    return {"ticket_id": "T-1", "incident_id": "flood-1", "source_ref": "R-1", "dedup_key": "k", "department":
            "city_management", "source": "flood", "category": "flood_waterlogging", "subcategory": "waterlogging",
            "severity": "red", "title": "积水", "lat": 22.5, "lon": 113.9, "observed_at": AT, "received_at": AT,
            "last_seen_at": AT, "dispatched_at": AT, "accept_due": "2026-12-06T06:30:00Z",
            "resolve_due": "2026-12-06T08:00:00Z", "history": OLD_HISTORY}


def test_an_old_ticket_reads_with_the_kind_each_action_text_meant():
    ticket = Ticket.model_validate_json(json.dumps(old_ticket()))
    assert [h.kind for h in ticket.history] == KINDS


def test_an_old_entry_gets_the_details_its_sentence_needs():
    h = {e.event_id or e.action: e for e in Ticket.model_validate(old_ticket()).history}
    assert h["dispatch"].department == "flood_control"
    assert (h["flood-2"].from_severity.value, h["flood-2"].to_severity.value) == ("orange", "red")
    assert (h["esc-accept-reminded-1"].stage, h["esc-accept-reminded-1"].due) == (
        "accept", datetime(2026, 12, 6, 6, 30, 0, 512000, tzinfo=timezone.utc))
    assert h["api-4"].until == datetime(2026, 12, 7, 6, tzinfo=timezone.utc)
    assert (h["api-7"].from_department, h["api-7"].department, h["api-7"].note) == (
        "flood_control", "city_management", "城管处理")
    assert (h["api-8"].from_department, h["api-8"].department) == ("flood_control", "city_management")
    assert h["api-11"].result == "unsatisfied"


def test_an_old_ticket_written_again_keeps_every_field_it_had_and_gains_the_kinds():
    ticket = Ticket.model_validate_json(json.dumps(old_ticket()))
    written = json.loads(ticket.model_dump_json())
    for old, new in zip(OLD_HISTORY, written["history"], strict=True):
        if old["event_id"] != "api-7":  # its departments moved out of the note into their own fields
            assert {k: new[k] for k in old} == {**old, "at": new["at"]}
        assert "kind" in new
    # Read again it is the same ticket, and writing it again gives the same bytes (replays stay exact).
    again = Ticket.model_validate_json(ticket.model_dump_json())
    assert again == ticket and again.model_dump_json() == ticket.model_dump_json()


def test_details_that_do_not_apply_are_not_written():
    entry = HistoryEntry.model_validate({"at": AT, "by": "pipeline", "action": "occurrence", "note": "x"})
    assert json.loads(entry.model_dump_json()) == {"at": AT, "by": "pipeline", "action": "occurrence", "note": "x",
                                                   "event_id": "", "user": None, "kind": "occurrence"}


def test_an_old_entry_of_an_action_no_version_wrote_is_refused_with_its_text():
    with pytest.raises(ValidationError, match="history entry of unknown action 'teleported'"):
        HistoryEntry.model_validate({"at": AT, "by": "pipeline", "action": "teleported"})


def test_the_readers_decide_old_tickets_by_kind(config):
    ticket = Ticket.model_validate(old_ticket())
    # The deadlines restart at the latest redispatch, written "redispatch a -> b" by an older version.
    assert escalation.deadlines_set_at(ticket) == datetime(2026, 12, 6, 6, 39, tzinfo=timezone.utc)
    facts = performance.facts_of(ticket)
    assert (facts.submitted, facts.extended) == (True, True)
    assert [c.event for c in notify.changes(ticket)] == [
        "dispatched", "severity_raised", "reminded", "rework", "redispatched", "redispatched", "closed", "escalated",
        "reported", "rework", "returned"]
    text = [wording.history_text(config.district, h) for h in ticket.history]
    assert text[3] == "12月6日 14:01 系统将等级由橙色升为红色"
    assert text[4] == "12月6日 14:20 系统自动催办：签收时限 12月6日 14:30"
    assert text[5] == "12月6日 14:25 张值班（街道智慧运行中心）已知悉"
    assert text[8] == "12月6日 14:28 街道智慧运行中心同意延期至 12月7日 14:00"


def test_no_module_decides_by_the_display_text_of_a_history_entry():
    """Meaning lives in HistoryEntry.kind: no code reads it out of `action` (or the board out of a note)."""
    parsing = re.compile(r"\.action\.(split|startswith|startsWith|endswith|endsWith|partition|removeprefix|includes)\(|"
                         r"(history\[\w+\]|\bh|\bentry)\.action\s*(===?|!==?|in\b)|\.note\s*===?\s*SEEN_NOTE")
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for folder in ("handlers", "streams", "bench")
             for path in sorted((ROOT / folder).rglob("*"))
             if path.suffix in (".py", ".js") and "echarts" not in path.name
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if parsing.search(line)]
    assert found == []
