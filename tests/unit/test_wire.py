"""Rolling updates: a worker reads records a newer worker wrote, with fields it does not know, without
refusing them, and writes those fields out again unchanged (schemas/strict.py WIRE)."""
from __future__ import annotations

import json
from datetime import timedelta

from handlers import ticketing
from handlers.lifecycle import Verdict
from schemas.enums import OPS_CENTRE
from schemas.records import KeyState, TicketAction, TicketEvent


def test_a_state_and_a_command_with_unknown_fields_are_applied_and_keep_them(config, incident):
    first = incident("flood", "waterlogging_underpass")
    opened = ticketing.step(config, None, first, first.dedup_key)
    [ticket] = opened.tickets
    # As a newer version would write them: a field on the ticket, on the state and on the command.
    newer = json.loads(opened.state.model_dump_json())
    newer["tickets"][ticket.ticket_id]["priority_hint"] = {"from": "v2"}
    newer["added_in_v2"] = [1, 2]
    state = KeyState.model_validate_json(json.dumps(newer))
    command = TicketEvent.model_validate_json(json.dumps({
        **json.loads(TicketEvent(event_id="api-1", ticket_id=ticket.ticket_id, action=TicketAction.comment,
                                 by="值班员", actor=OPS_CENTRE, at=first.received_at + timedelta(minutes=1),
                                 note="看一下").model_dump_json()),
        "signed_by": "v2-key"}))
    outcome = ticketing.step(config, state, command, first.dedup_key)
    assert outcome.verdict is Verdict.applied
    written = json.loads(outcome.state.model_dump_json())
    assert written["added_in_v2"] == [1, 2]
    assert written["tickets"][ticket.ticket_id]["priority_hint"] == {"from": "v2"}
    assert json.loads(outcome.tickets[0].model_dump_json())["priority_hint"] == {"from": "v2"}
