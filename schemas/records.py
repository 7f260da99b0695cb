"""Canonical records on the internal topics: Incident, Ticket, TicketEvent, DeadLetter."""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from schemas.accounts import Actor
from schemas.enums import Category, Escalation, Severity, Source, TicketStatus
from schemas.correlation import Part, Related, Role, Sighting
from schemas.response import ResponseChange
from schemas.strict import WIRE, WIRE_FROZEN


class Record(BaseModel):
    model_config = WIRE


class Incident(Record):
    incident_id: str
    source: Source
    category: Category
    subcategory: str
    severity: Severity
    title: str
    description: str = ""
    lat: float
    lon: float
    community: str | None = None
    observed_at: AwareDatetime
    received_at: AwareDatetime
    dedup_key: str
    source_ref: str
    details: dict[str, Any] = Field(default_factory=dict)


class HistoryEntry(Record):
    at: AwareDatetime
    by: str
    action: str
    note: str = ""
    event_id: str = ""
    # The person (or service credential) who acted, from the sign-in; None for the pipeline's own steps.
    user: Actor | None = None


class ExtensionRequest(Record):
    by: str
    until: AwareDatetime
    reason: str
    requested_at: AwareDatetime
    user_id: str | None = None  # who asked: they may not decide it themselves


FollowupResult = Literal["satisfied", "basically_satisfied", "unsatisfied", "unreachable"]


class Followup(Record):
    """One follow-up call (回访) with the citizen after the ticket closed."""

    at: AwareDatetime
    by: str
    result: FollowupResult
    note: str = ""


class Ticket(Record):
    ticket_id: str
    incident_id: str
    # The source's own id of the first report: the 12345 case number, a sensor event id.
    source_ref: str
    dedup_key: str
    department: str
    # Departments that also see the ticket in their inbox (ops_centre for red tickets).
    watchers: list[str] = Field(default_factory=list)
    out_of_jurisdiction: bool = False
    source: Source
    category: Category
    subcategory: str
    severity: Severity
    # The severity it opened with (later reports and links may raise `severity`).
    opened_severity: Severity | None = None
    title: str
    description: str = ""
    community: str | None = None
    lat: float
    lon: float
    status: TicketStatus = TicketStatus.dispatched
    escalation: Escalation = Escalation.none
    occurrences: int = 1
    incident_ids: list[str] = Field(default_factory=list)
    observed_at: AwareDatetime
    received_at: AwareDatetime
    last_seen_at: AwareDatetime
    dispatched_at: AwareDatetime
    accept_due: AwareDatetime
    resolve_due: AwareDatetime
    accepted_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    closed_at: AwareDatetime | None = None
    reworks: int = 0
    returns: int = 0
    extension: ExtensionRequest | None = None
    previous_ticket_id: str | None = None
    successor_ticket_id: str | None = None
    # Opened under a silence (quiet, or red under suppress): not notified before quiet_until.
    silenced_by: str | None = None
    quiet_until: AwareDatetime | None = None
    # The report's channel (city reports): hotline and app cases are followed up (回访) after closure.
    channel: str | None = None
    # The road a traffic report names (correlation rules compare it).
    road: str | None = None
    # When its source's readings came back to normal (rules.yaml all_clear): a hint, never a closure.
    source_cleared_at: AwareDatetime | None = None
    # Tickets linked to this one by a correlation rule (rules.yaml `correlations`), with their part.
    related: list[Related] = Field(default_factory=list)
    # While a follow-up is owed: when it is due (the centre's ladder runs on it); None once done.
    followup_due: AwareDatetime | None = None
    followups: list[Followup] = Field(default_factory=list)
    # The citizen's verdict: the last follow-up's result, or "unrated" when the citizen could not be reached.
    rating: Literal["satisfied", "basically_satisfied", "unsatisfied", "unrated"] | None = None
    # The emergency-response level in force when it opened (its deadlines and grading reflect it).
    response_level: Literal["I", "II", "III", "IV"] | None = None
    # Inhibition rules (rules.yaml) this ticket is the source of, with its labels those rules compare.
    inhibits: list[str] = Field(default_factory=list)
    inhibit_labels: dict[str, list[str]] = Field(default_factory=dict)
    version: int = 1
    history: list[HistoryEntry] = Field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status is not TicketStatus.closed

    @property
    def inboxes(self) -> list[str]:
        return [self.department, *[w for w in self.watchers if w != self.department]]


class TicketAction(str, Enum):
    # Raised by the pipeline's timers (incidents reach the ticket step on soc.incidents)
    escalate = "escalate"
    # Departments
    accept = "accept"
    resolve = "resolve"
    return_ = "return"
    extend = "extend"
    comment = "comment"
    # Operations centre
    extend_decision = "extend_decision"
    verify = "verify"
    redispatch = "redispatch"
    reopen = "reopen"
    # The owner's retention sweep: a ticket closed past retention leaves the table.
    expire = "expire"
    # The centre's follow-up call (回访) with the citizen after closure.
    followup = "followup"
    # A correlation rule linked this ticket to another (sent by the rule's cell, handlers/correlation.py).
    relate = "relate"
    # A silent device reports again (handlers/heartbeat.py): an entry on its offline ticket.
    recover = "recover"
    # The alarm's source has read normal for a while (rules.yaml all_clear): a hint on its open ticket.
    clear = "clear"
    # The owner's sweep under a `retroactive` response level: an open ticket gets the level's deadlines.
    respond = "respond"


class TicketEvent(Record):
    event_id: str
    ticket_id: str
    action: TicketAction
    by: str
    actor: str = Field(description="department id of whoever acts, or 'pipeline'")
    at: AwareDatetime
    # Who acted, from the sign-in (the HTTP API sets it; a request body cannot).
    user: Actor | None = None
    note: str = ""
    until: AwareDatetime | None = None
    approve: bool | None = None
    passed: bool | None = None
    department: str | None = None
    # On escalate: the deadline stage ("accept" or "resolve") and the ladder step taken.
    stage: str | None = None
    step: Escalation | None = None
    # On respond: the level that came into force.
    level: Literal["I", "II", "III", "IV"] | None = None
    # On followup: what the citizen said.
    result: FollowupResult | None = None
    # On relate: the other ticket, the rule, and the other ticket's part.
    related_ticket_id: str | None = None
    rule: str | None = None
    role: Role | None = None
    # On recover: the device_offline incident; the command goes to the ticket it touched.
    incident_id: str | None = None


class Seen(Record):
    """One ticket on a dedup key and the span of observations it has merged."""

    model_config = WIRE_FROZEN
    ticket_id: str
    first_seen_at: AwareDatetime
    last_seen_at: AwareDatetime
    # When its latest report arrived: a source delivering old readings late keeps its span alive.
    last_received_at: AwareDatetime


class KeyState(Record):
    """Everything the ticket step knows of one dedup key: the value of its one table.

    `tickets` holds the key's open tickets and those closed within retention; `seen` the spans
    still inside the dedup window (oldest first); `counted` every incident id counted on the key
    with the tickets its report touched, so a replay of it re-emits exactly those tickets."""

    dedup_key: str
    tickets: dict[str, Ticket] = Field(default_factory=dict)
    seen: list[Seen] = Field(default_factory=list)
    counted: dict[str, list[str]] = Field(default_factory=dict)
    # The latest closure among tickets that left by retention: a report received before it and not
    # in `counted` belonged to one of them, so a replay of it changes nothing.
    expired_through: AwareDatetime | None = None
    # Incidents a silence kept from opening a ticket, with the silence: a replay lists them again;
    # those an inhibition kept back, with the inhibiting ticket.
    silenced: dict[str, str] = Field(default_factory=dict)
    inhibited: dict[str, str] = Field(default_factory=dict)
    # Per response rule fed by this key: its history of changes (published to soc.response).
    response: dict[str, list[ResponseChange]] = Field(default_factory=dict)
    # A correlation cell's key (corr:<rule>:<cell>): the tickets sighted there inside the rule's window,
    # and per sighting the relate commands it sent, so a replay sends exactly those again.
    sightings: dict[str, Sighting] = Field(default_factory=dict)
    linked: dict[str, list[TicketEvent]] = Field(default_factory=dict)
    # A dedup key's incidents that made one of its tickets qualify for a correlation part, with the parts.
    sighted: dict[str, list[Part]] = Field(default_factory=dict)


class FieldError(Record):
    loc: str
    msg: str
    type: str


class DeadLetter(Record):
    source_topic: str
    partition: int | None
    offset: int | None
    received_at: datetime
    error_type: str
    message: str
    field_errors: list[FieldError] = Field(default_factory=list)
    raw_text: str | None = None
    raw_base64: str | None = None
    raw_size: int = 0
    raw_truncated: bool = False
