"""Canonical records on the internal topics: Incident, Ticket, TicketEvent, DeadLetter."""
from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from schemas.accounts import Actor
from schemas.enums import Category, Escalation, Severity, Source, TicketKind, TicketStatus
from schemas.correlation import Part, Partner, Related, Role, Sighting
from schemas.plans import PlanRun, TaskPart
from schemas.resources import ResourceHold
from schemas.evidence import Photo
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


FollowupResult = Literal["satisfied", "basically_satisfied", "unsatisfied", "unreachable"]


class HistoryKind(str, Enum):
    """What a history entry records. Readers decide by this, never by the display text in `action`."""

    dispatch = "dispatch"
    occurrence = "occurrence"
    severity_raised = "severity_raised"
    # The escalation ladder: 催办, 督办, 通报.
    reminded = "reminded"
    escalated = "escalated"
    reported = "reported"
    accept = "accept"
    resolve = "resolve"
    return_ = "return"
    extension_requested = "extension_requested"
    extension_approved = "extension_approved"
    extension_rejected = "extension_rejected"
    closed = "closed"  # verified and closed
    rework = "rework"  # verification failed: back to the department
    redispatch = "redispatch"
    reopen = "reopen"
    comment = "comment"
    acknowledged = "acknowledged"  # 已知悉: the duty officer has seen a red ticket
    followup = "followup"
    related = "related"
    recurred = "recurred"
    response = "response"
    silenced = "silenced"
    source_cleared = "source_cleared"
    device_recovered = "device_recovered"
    checked = "checked"  # a task's checklist item ticked (or unticked)
    stood_down = "stood_down"  # an open task cancelled when its plan run stood down
    resource_assigned = "resource_assigned"  # a resource (resources.yaml) sent to the ticket
    resource_released = "resource_released"
    evidence = "evidence"  # a photo uploaded (its `photo`; the image itself is on soc.evidence)
    # 主办/协办: supporting departments added (`departments`), one's part accepted, its feedback given.
    support_added = "support_added"
    support_accepted = "support_accepted"
    support_feedback = "support_feedback"
    # 派单异议: the owner disputes the dispatch (`department`: the one it suggests), and the centre's ruling.
    disputed = "disputed"
    dispute_upheld = "dispute_upheld"  # back to the disputing department (`department`)
    dispute_reassigned = "dispute_reassigned"  # from `from_department` to `department`


# The display texts entries were written with before they carried a kind: what each one meant.
_KIND_OF_ACTION = {
    "dispatch": HistoryKind.dispatch, "occurrence": HistoryKind.occurrence,
    "severity_raised": HistoryKind.severity_raised, "催办 reminder": HistoryKind.reminded,
    "督办 escalation": HistoryKind.escalated, "通报 report": HistoryKind.reported, "accept": HistoryKind.accept,
    "resolve": HistoryKind.resolve, "return": HistoryKind.return_, "extend": HistoryKind.extension_requested,
    "extension rejected": HistoryKind.extension_rejected, "verified and closed": HistoryKind.closed,
    "rework": HistoryKind.rework, "redispatch": HistoryKind.redispatch, "reopen": HistoryKind.reopen,
    "comment": HistoryKind.comment, "related": HistoryKind.related, "recurred": HistoryKind.recurred,
    "response": HistoryKind.response, "silenced": HistoryKind.silenced, "source_cleared": HistoryKind.source_cleared,
    "device_recovered": HistoryKind.device_recovered,
}
_LEGACY_SEVERITY = re.compile(r"^(red|orange|yellow|blue) -> (red|orange|yellow|blue)\b")
_LEGACY_DUE = re.compile(r"^(accept|resolve|followup) due (\S+)$")
_LEGACY_FOLLOWUP = {"不满意": "unsatisfied", "基本满意": "basically_satisfied", "满意": "satisfied",
                    "未接通": "unreachable"}
# The words the board wrote as a comment to say 已知悉 before it was an action of its own.
_LEGACY_SEEN_NOTE = "已知悉"


def legacy_fields(action: str, note: str) -> dict[str, Any]:
    """The kind (and what the display needs) of an entry written before entries carried one, read from
    the texts that version wrote. Only records from then pass here: new entries are written with their kind."""
    if action.startswith("extension approved"):
        found: dict[str, Any] = {"kind": HistoryKind.extension_approved}
        until = action.removeprefix("extension approved").removeprefix(" until ").strip()
        return {**found, "until": datetime.fromisoformat(until)} if until else found
    if action.startswith("redispatch "):  # "redispatch a -> b", from before the departments moved to the note
        source, _, target = action.removeprefix("redispatch ").partition(" -> ")
        return {"kind": HistoryKind.redispatch, "from_department": source, "department": target}
    if action.startswith("回访"):
        result = next((r for label, r in _LEGACY_FOLLOWUP.items() if label in action), None)
        return {"kind": HistoryKind.followup, "result": result}
    if action not in _KIND_OF_ACTION:
        raise ValueError(f"history entry of unknown action {action!r}")
    kind = _KIND_OF_ACTION[action]
    found = {"kind": kind}
    if kind is HistoryKind.comment and note == _LEGACY_SEEN_NOTE:
        found["kind"] = HistoryKind.acknowledged
    elif kind is HistoryKind.dispatch and note:
        found["department"] = note.split(" ", 1)[0]
    elif kind is HistoryKind.redispatch and " -> " in note:
        # "a -> b: why": the departments become details, the note keeps the person's words.
        moved, _, words = note.partition(": ")
        source, _, target = moved.partition(" -> ")
        found.update(from_department=source, department=target, note=words)
    elif kind is HistoryKind.severity_raised and (match := _LEGACY_SEVERITY.match(note)):
        found.update(from_severity=Severity(match[1]), to_severity=Severity(match[2]))
    elif kind in (HistoryKind.reminded, HistoryKind.escalated, HistoryKind.reported) and (
            match := _LEGACY_DUE.match(note)):
        found.update(stage=match[1], due=datetime.fromisoformat(match[2]))
    return found


# Entries keep the size they had: a detail that does not apply to an entry is not written as null.
def _detail() -> Any:
    return Field(None, exclude_if=lambda value: value is None)


class HistoryEntry(Record):
    at: AwareDatetime
    by: str
    # The display text it was written with (kept on the wire for readers of older versions).
    action: str
    note: str = ""
    event_id: str = ""
    # The person (or service credential) who acted, from the sign-in; None for the pipeline's own steps.
    user: Actor | None = None
    # Always set once read: an entry from before kinds (none on the wire) gets the one its texts meant.
    kind: HistoryKind = None
    # What the people-facing text names, by kind (None where it does not apply, and left off the wire):
    # the department acting (a person's step), the department sent to (dispatch, redispatch) and from,
    # the severities of a raise, the deadline a ladder step is about, the time an extension asks for,
    # the citizen's answer to a follow-up, the response level, the linked ticket, its part and the rule.
    actor: str | None = _detail()
    department: str | None = _detail()
    from_department: str | None = _detail()
    from_severity: Severity | None = _detail()
    to_severity: Severity | None = _detail()
    stage: Literal["accept", "resolve", "followup", "ruling", "support_accept", "support_feedback"] | None = _detail()
    due: AwareDatetime | None = _detail()
    until: AwareDatetime | None = _detail()
    result: FollowupResult | None = _detail()
    level: Literal["I", "II", "III", "IV"] | None = _detail()
    related_ticket_id: str | None = _detail()
    rule: str | None = _detail()
    role: Role | None = _detail()  # the linked ticket's part
    item: int | None = _detail()  # a checked entry's checklist line (0 is the first) and its state
    done: bool | None = _detail()
    resource_id: str | None = _detail()  # a resource entry's resource
    photo: Photo | None = _detail()  # an evidence entry's image
    departments: list[str] | None = _detail()  # the supporting departments a support_added entry adds
    # A closed entry verified before these supporting departments gave feedback (the centre's override).
    overridden: list[str] | None = _detail()

    # After validation, not before: a before-validator makes pydantic build every entry's JSON as a dict
    # first, and reading a ticket takes about three times as long.
    @model_validator(mode="after")
    def _kind_of_older_entries(self) -> HistoryEntry:
        if self.kind is None:
            for name, value in legacy_fields(self.action, self.note).items():
                setattr(self, name, value)
        return self


class ExtensionRequest(Record):
    by: str
    until: AwareDatetime
    reason: str
    requested_at: AwareDatetime
    user_id: str | None = None  # who asked: they may not decide it themselves
    # Asked by a department's machine credential (names no person), not a signed-in person.
    by_service: bool = False

    @model_validator(mode="after")
    def _service_of_older_requests(self) -> ExtensionRequest:
        # Requests written before `by_service` said it only in the credential's user id.
        if "by_service" not in self.model_fields_set and self.user_id and self.user_id.startswith("service:"):
            self.by_service = True
        return self


class Followup(Record):
    """One follow-up call (回访) with the citizen after the ticket closed."""

    at: AwareDatetime
    by: str
    result: FollowupResult
    note: str = ""


class SupportStatus(str, Enum):
    """Where a supporting department (协办单位) stands with its part of a ticket."""

    asked = "asked"  # added, not accepted yet
    accepted = "accepted"
    fed_back = "fed_back"  # its feedback given: its part is done


class SupportPart(Record):
    """A supporting department's own part of a ticket: accepted by `accept_due`, feedback by `due`."""

    department: str
    status: SupportStatus = SupportStatus.asked
    asked_at: AwareDatetime
    accept_due: AwareDatetime
    due: AwareDatetime
    accepted_at: AwareDatetime | None = None
    feedback: str | None = None
    fed_back_at: AwareDatetime | None = None


class Dispute(Record):
    """派单异议: the owner says the ticket is not its business; it waits for the centre's ruling by `rule_due`."""

    department: str  # the disputing department
    reason: str
    suggest: str | None = None  # the department it thinks the ticket belongs to
    at: AwareDatetime
    rule_due: AwareDatetime


class Ruling(str, Enum):
    """The centre's ruling on a dispute: the dispatch stands (back to the disputing department), or it moves."""

    uphold = "uphold"
    reassign = "reassign"


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
    # The reporter's photo (Open311 media_url): an http(s) link shown as one, never fetched by the server.
    media_url: str | None = None
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
    # A pre-plan's task (schemas/plans.py) carries its run, its part and its checklist in `task`.
    kind: TicketKind = TicketKind.incident
    task: TaskPart | None = None
    # 主办/协办: the supporting departments' parts (the lead is `department`); the centre verifies once each
    # has given feedback.
    support: list[SupportPart] = Field(default_factory=list)
    # 派单异议: the owner's dispute while it waits for the centre's ruling (status returned); None otherwise.
    dispute: Dispute | None = None
    version: int = 1
    history: list[HistoryEntry] = Field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status is not TicketStatus.closed

    @property
    def inboxes(self) -> list[str]:
        others = [*self.watchers, *(p.department for p in self.support)]
        return [self.department, *dict.fromkeys(d for d in others if d != self.department)]


class TicketAction(str, Enum):
    # Raised by the pipeline's timers (incidents reach the ticket step on soc.incidents)
    escalate = "escalate"
    # Departments
    accept = "accept"
    resolve = "resolve"
    return_ = "return"
    extend = "extend"
    comment = "comment"
    # 已知悉: whoever watches a ticket says they have seen it (the board stops announcing it).
    acknowledge = "acknowledge"
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
    # A task's department ticks a line of its checklist (`item`, `done`).
    check = "check"
    # A resource assigned to or released from the ticket (sent by the resource's key: handlers/resources.py).
    assign_resource = "assign_resource"
    release_resource = "release_resource"
    # A photo uploaded as evidence (POST /api/tickets/{id}/evidence): an entry naming the stored image.
    evidence = "evidence"
    # 主办/协办: the centre adds supporting departments (`departments`); each accepts and gives feedback.
    add_support = "add_support"
    support_accept = "support_accept"
    support_feedback = "support_feedback"
    # 派单异议: the owner disputes the dispatch (`department`: its suggestion); the centre rules (`decision`).
    dispute = "dispute"
    rule = "rule"


class TicketEvent(Record):
    event_id: str
    ticket_id: str
    action: TicketAction
    by: str
    actor: str = Field(description="department id of whoever acts, or 'pipeline'")
    at: AwareDatetime
    # Who acted, from the sign-in (the HTTP API sets it; a request body cannot).
    user: Actor | None = None
    # The departments whose service credential that person holds (the account store, at the time of the
    # command): carried here so that a replay decides the closed loop's rule as the first run did.
    holds: list[str] = []
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
    # On check: the checklist line (0 is the first) and whether it is done.
    item: int | None = None
    done: bool | None = None
    # On assign_resource and release_resource: the resource.
    resource_id: str | None = None
    # On evidence: the image, already stored on soc.evidence.
    photo: Photo | None = None
    # On add_support: the supporting departments added.
    departments: list[str] | None = None
    # On rule: the ruling (`department` names where a reassign sends the ticket; on dispute, the suggestion).
    decision: Ruling | None = None
    # On verify: close although some supporting departments have not given feedback (the note says why).
    override: bool | None = None


class Seen(Record):
    """One ticket on a dedup key and the span of observations it has merged."""

    model_config = WIRE_FROZEN
    ticket_id: str
    first_seen_at: AwareDatetime
    last_seen_at: AwareDatetime
    # When its latest report arrived: a source delivering old readings late keeps its span alive.
    last_received_at: AwareDatetime


class Touched(Record):
    """What a counted incident did: the tickets its report wrote (a replay re-emits them as they stand)."""

    kind: Literal["touched"] = "touched"
    tickets: list[str]


class Kept(Record):
    """What a suppressed incident did: a silence (or `inhibit:<rule>`, with the inhibiting ticket) kept it
    from opening a ticket; a replay lists it again."""

    kind: Literal["kept"] = "kept"
    cover: str
    source_ticket_id: str | None = None


Effect = Annotated[Touched | Kept, Field(discriminator="kind")]


class Run(Record):
    """Incidents of one soc.incidents partition, offsets first..last, that did the same: the offsets of
    other keys' records in between are never asked about here."""

    partition: int
    first: int
    last: int
    effect: Effect


class KeyState(Record):
    """Everything the ticket step knows of one dedup key: the value of its one table.

    `tickets` holds the key's open tickets and those closed within retention; `seen` the spans
    still inside the dedup window (oldest first). Whether an incident was decided before is told by
    `marks` (its partition's offset), or by `recent` for a copy at another offset; what it did, so a
    replay emits exactly that again, by `recent` or `runs`. All three are bounded
    (handlers/ticketing.py: RECENT, RUNS), so a key hot for hours stays the size it had after minutes."""

    dedup_key: str
    tickets: dict[str, Ticket] = Field(default_factory=dict)
    seen: list[Seen] = Field(default_factory=list)
    # Per soc.incidents partition, the offset of the latest incident counted or suppressed on this key.
    # Inputs are admitted in offset order, so one at or below it was decided before.
    marks: dict[int, int] = Field(default_factory=dict)
    # What the incidents did, as runs of offsets with one effect (a storm on one ticket is one run).
    runs: list[Run] = Field(default_factory=list)
    # The latest incidents decided, by id, with what they did (oldest first): a copy of one sent again
    # under a new offset (a parse replayed upstream) is a replay too.
    recent: dict[str, Effect] = Field(default_factory=dict)
    # The latest closure among tickets that left by retention: a report received before it and not
    # known here belonged to one of them, so a replay of it changes nothing.
    expired_through: AwareDatetime | None = None
    # Per response rule fed by this key: its history of changes (published to soc.response).
    response: dict[str, list[ResponseChange]] = Field(default_factory=dict)
    # A correlation cell's key (corr:<rule>:<cell>): the tickets sighted there inside the rule's window
    # (the latest CELL_SIGHTINGS of each part: handlers/correlation.py), and per sighting the other
    # tickets it was paired with, so a replay sends exactly the relate commands it sent.
    sightings: dict[str, Sighting] = Field(default_factory=dict)
    linked: dict[str, list[Partner]] = Field(default_factory=dict)
    # A dedup key's incidents that made one of its tickets qualify for a correlation part, with the parts.
    sighted: dict[str, list[Part]] = Field(default_factory=dict)
    # A plan run's key (plan:<run id>): the run; its task tickets are `tickets`.
    run: PlanRun | None = None
    # A resource's key (resource:<id>): who holds it.
    hold: ResourceHold | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_earlier_shapes(cls, data: Any) -> Any:
        """A value written before the bounded shape reads into it: every id in `counted`, `silenced` and
        `inhibited` into `recent` (its next write keeps only the latest), and a cell's relate commands
        per sighting into the partners they name."""
        if not isinstance(data, dict):
            return data
        if any(isinstance(v, dict) and "action" in v for found in (data.get("linked") or {}).values() for v in found):
            data = {**data, "linked": _partners_of_commands(data["linked"], data.get("sightings") or {})}
        if not {"counted", "silenced", "inhibited"} & data.keys():
            return data
        data = dict(data)
        counted, silenced = data.pop("counted", None) or {}, data.pop("silenced", None) or {}
        inhibited = data.pop("inhibited", None) or {}
        recent = {i: {"kind": "touched", "tickets": tickets} for i, tickets in counted.items()}
        recent.update({i: {"kind": "kept", "cover": cover, "source_ticket_id": inhibited.get(i)}
                       for i, cover in silenced.items()})
        data["recent"] = {**recent, **(data.get("recent") or {})}
        return data


def _partners_of_commands(linked: dict, sightings: dict) -> dict:
    """Per sighting, the tickets its relate commands paired it with, from the sightings the cell still
    holds (a partner no longer held was dropped from a replay's commands then too)."""
    by_ticket = {s.get("ticket_id"): s for s in sightings.values() if isinstance(s, dict)}
    partners = {}
    for sighting_id, commands in linked.items():
        own = (sightings.get(sighting_id) or {}).get("ticket_id")
        named = [c.get("related_ticket_id") for c in commands if isinstance(c, dict) and c.get("ticket_id") == own]
        partners[sighting_id] = [{"ticket_id": t, "dedup_key": by_ticket[t]["dedup_key"], "at": by_ticket[t]["at"]}
                                 for t in named if t in by_ticket]
    return partners


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
