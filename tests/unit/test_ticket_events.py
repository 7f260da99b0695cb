"""soc.ticket-events values decode by their `kind` (schemas/ticket_events.py), never by searching their bytes."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import get_args

import pytest
from pydantic import Tag

from schemas.correlation import Sighting
from schemas.plans import PlanActivate, PlanStandDown
from schemas.preventive import PreventiveOpen
from schemas.records import TicketAction, TicketEvent
from schemas.resources import ResourceCommand
from schemas.response import LevelDecision, ResponseChange
from schemas.ticket_events import STEP_INPUT, StepInput

AT = datetime(2026, 12, 6, 2, 0, tzinfo=timezone.utc)


def command(note: str = "") -> TicketEvent:
    return TicketEvent(event_id="api-1", ticket_id="T20261206-0001", action=TicketAction.comment, by="张三",
                       actor="traffic_police", at=AT, note=note)


def test_a_command_whose_note_quotes_another_kind_is_still_a_command():
    # The bytes of a comment may hold any text; a search for '"kind":"sighting"' took this for a sighting.
    for text in ('"kind":"sighting"', '"kind":"plan_activate"', '"kind":"level_decision"'):
        decoded = STEP_INPUT.validate_json(command(text).model_dump_json())
        assert isinstance(decoded, TicketEvent) and decoded.note == text


def test_a_command_written_before_kinds_existed_reads_as_a_command():
    older = b'{"event_id":"e1","ticket_id":"T1","action":"accept","by":"x","actor":"traffic_police",' \
            b'"at":"2026-01-02T03:04:05Z"}'
    decoded = STEP_INPUT.validate_json(older)
    assert isinstance(decoded, TicketEvent) and decoded.action is TicketAction.accept


def test_each_inputs_tag_is_the_kind_it_writes():
    # A value is written with its model's `kind` and read by the tag: the two must be the same word.
    members = get_args(get_args(StepInput)[0])
    tags = {}
    for member in members:
        model, *metadata = get_args(member)
        [tag] = [m.tag for m in metadata if isinstance(m, Tag)]
        tags[tag] = model
    assert tags.pop("command") is TicketEvent
    assert set(tags.values()) == {Sighting, PlanActivate, PlanStandDown, ResourceCommand, PreventiveOpen, LevelDecision}
    for tag, model in tags.items():
        assert model.model_fields["kind"].default == tag


def test_a_level_decision_round_trips():
    decision = LevelDecision(event_id="api-2", change=ResponseChange(at=AT, level="II", reason="区防指决定",
                                                                     trigger="manual", by="张值班"))
    assert STEP_INPUT.validate_json(decision.model_dump_json()) == decision


def test_an_unknown_kind_is_refused_not_taken_for_a_command():
    with pytest.raises(ValueError, match="does not match any of the expected tags"):
        STEP_INPUT.validate_json(b'{"kind":"teleport","event_id":"x"}')
