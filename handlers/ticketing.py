"""The ticket step: one input (an incident, or a command on a ticket) against its dedup key's state.

Both inputs reach the step keyed by the dedup key, so a key and all its tickets live in one
partition of one table, and each input is decided and recorded in one table write:

    incident -> decided before?  -> replayed (the tickets it touched, as they stand)
             -> dedup.match      -> occurrence of its ticket (a closed one: a successor opens)
             -> routing.route    -> silences.silencing -> suppressed (no ticket; recorded)
                                                       -> a new ticket (quiet under a quiet silence,
                                                          and a red one under any silence)
    command  -> its ticket       -> lifecycle.apply (accept ... verify, escalate, relate) | expire
    sighting -> a correlation cell's key (corr:...) -> correlation.on_sighting -> relate commands
    plan command -> a plan run's key (plan:...) -> plans.on_command: the run started (its tasks opened)
                    or stood down (handlers/plans.py)
    resource command -> a resource's key (resource:...) -> resources.on_command: assigned, released,
                    occupancy; an entry command for the ticket's history (handlers/resources.py)
    preventive open -> a recurring place's key for a warning period (preventive:...) ->
                    preventive.on_command: its one preventive ticket (handlers/preventive.py)

A ticket opened at a plan's trigger, and a correlation rule linking a cause ticket, also send the
plans' start commands to their runs' keys (a replay sends the same again; the run starts once).

Every time comes from the input (incident.received_at, stamped once at parse; command.at), never
from a clock, so processing an input again reproduces the first run's outputs byte for byte.

"Decided before" is told by the incident's offset against its partition's mark (inputs are admitted
in offset order), or by its id among the key's RECENT latest (a copy under a new offset: its parse
replayed upstream). What it did is kept per id for those, and as runs of offsets for the older ones,
so the state of a key hot for hours stays the size it had after minutes.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta

from handlers import correlation, dedup, lifecycle, plans, preventive, resources, response
from handlers.deadlines import due_dates
from handlers import silences as silence_rules
from handlers.lifecycle import Verdict
from handlers.response import Levels
from handlers.routing import red_watchers, route
from handlers.tickets import PIPELINE, add_occurrence, open_ticket
from schemas.config import Config
from schemas.enums import Escalation, Severity, TicketStatus
from schemas.records import Effect, HistoryEntry, HistoryKind, Incident, Kept, KeyState, Run, Ticket, TicketAction, \
    TicketEvent, Touched
from schemas.correlation import Sighting
from schemas.plans import PlanActivate, PlanRun, PlanStandDown
from schemas.preventive import PreventiveOpen
from schemas.resources import ResourceCommand, ResourceHold
from schemas.response import MANUAL, LevelDecision, ResponseChange
from schemas.silences import Inhibitor, Silence

# Incident ids kept with what they did: covers a copy sent again under a new offset by a parse step
# replayed after a crash (its uncommitted span reaches this key a few dozen times even when hot).
RECENT = 64
# Runs of offsets kept: one per change of what consecutive incidents did (a new ticket, a successor,
# a silence); the oldest go first, and a replay older than every run emits nothing again.
RUNS = 32


@dataclass(frozen=True)
class Position:
    """Where an incident sits on soc.incidents (None for an input that was never there)."""

    partition: int
    offset: int


@dataclass(frozen=True)
class Opened:
    department: str
    severity: Severity


@dataclass(frozen=True)
class Merged:
    source: str


@dataclass(frozen=True)
class Escalated:
    department: str
    stage: str
    step: Escalation


@dataclass(frozen=True)
class Silenced:
    source: str


Count = Opened | Merged | Escalated | Silenced


@dataclass(frozen=True)
class Suppressed:
    """An incident a silence or an inhibition kept from opening a ticket: listed at /api/silenced.
    `silence_id` is the silence, `maintenance:<name>` or `inhibit:<rule>`; `source_ticket_id` the
    inhibiting ticket it is linked to."""

    incident: Incident
    silence_id: str
    source_ticket_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the agent does with one input: keep `state`, write `tickets`
    to Redis and soc.tickets, drop `evicted` from Redis's hot sets, and count `counts`."""

    verdict: Verdict
    state: KeyState | None
    tickets: tuple[Ticket, ...] = ()
    evicted: tuple[str, ...] = ()
    counts: tuple[Count, ...] = ()
    reason: str = ""
    suppressed: tuple[Suppressed, ...] = ()
    # Response triggers of this key with their whole histories, for soc.response.
    response: dict[str, list[ResponseChange]] = field(default_factory=dict)
    # Commands for other keys' tickets (a correlation cell's relate commands): (dedup key, command).
    commands: tuple[tuple[str, TicketEvent], ...] = ()
    # Tickets newly playing a correlation part, on their rules' cells (for soc.ticket-events).
    sightings: tuple[Sighting, ...] = ()
    # Plan runs started or stood down (for soc.plan-runs), and plans' start commands for runs' keys.
    runs: tuple[PlanRun, ...] = ()
    activations: tuple[PlanActivate, ...] = ()
    # Resources assigned, released or filled (for soc.resources).
    holds: tuple[ResourceHold, ...] = ()


@dataclass(frozen=True)
class Around:
    """What the step reads besides its key's state, all from global tables every worker holds: the
    silences, and every response trigger's history. One per batch: `levels` works out the response
    level from the histories once for all its inputs (and goes along when `response` is replaced)."""

    silences: tuple[Silence, ...] = ()
    response: Mapping[str, list[ResponseChange]] = field(default_factory=dict)
    inhibitors: tuple[Inhibitor, ...] = ()
    levels: Levels = field(default_factory=Levels)


def step(config: Config, state: KeyState | None,
         item: Incident | TicketEvent | Sighting | PlanActivate | PlanStandDown | ResourceCommand | PreventiveOpen
         | LevelDecision,
         key: str, around: Around | None = None, position: Position | None = None) -> Outcome:
    """`around`: the silences and response levels every worker holds; which apply is decided by the
    incident's own time. `position`: an incident's place on soc.incidents."""
    if isinstance(item, Incident):
        outcome = on_incident(config, state or KeyState(dedup_key=key), item, around or Around(), position)
        started = plans.ticket_activations(config, outcome.tickets, item)
        return replace(outcome, activations=tuple(started)) if started else outcome
    if isinstance(item, Sighting):
        linked = correlation.on_sighting(config, state or KeyState(dedup_key=key), item)
        started = plans.correlation_activations(config, item.rule, linked.commands, item.lat, item.lon, item.at)
        return Outcome(Verdict.replayed if linked.replayed else Verdict.applied, linked.state,
                       commands=linked.commands, reason=linked.reason, activations=tuple(started))
    if isinstance(item, (PlanActivate, PlanStandDown)):
        decided = plans.on_command(config, state, item, key)
        if decided.refused:
            return Outcome(Verdict.refused, state, reason=decided.refused)
        verdict = Verdict.replayed if decided.replayed else Verdict.applied
        # A run's start opens its tasks' tickets: counted as opened like any (soc_tickets_opened_total).
        opened = tuple(Opened(t.department, t.severity) for t in decided.tickets) \
            if isinstance(item, PlanActivate) and not decided.replayed else ()
        return Outcome(verdict, decided.state, decided.tickets, runs=(decided.run,), counts=opened,
                       reason="plan command already applied" if decided.replayed else "")
    if isinstance(item, PreventiveOpen):
        decided = preventive.on_command(config, state, item, key)
        if decided.replayed:
            return Outcome(Verdict.replayed, decided.state, decided.tickets, reason="preventive ticket already opened")
        return Outcome(Verdict.applied, decided.state, decided.tickets,
                       counts=tuple(Opened(t.department, t.severity) for t in decided.tickets))
    if isinstance(item, LevelDecision):
        state, history, replayed = response.decided(state, item, (around or Around()).response)
        return Outcome(Verdict.replayed if replayed else Verdict.applied, state, response={MANUAL: history},
                       reason="level decision already applied" if replayed else "")
    if isinstance(item, ResourceCommand):
        held = resources.on_command(config, state, item, key)
        if held.refused:
            return Outcome(Verdict.refused, state, reason=held.refused)
        return Outcome(Verdict.replayed if held.replayed else Verdict.applied, held.state, holds=(held.hold,),
                       commands=held.commands, reason="resource command already applied" if held.replayed else "")
    return on_command(config, state, item)


# ------------------------------------------------------------------ incidents

def on_incident(config: Config, state: KeyState, incident: Incident, around: Around,
                position: Position | None = None) -> Outcome:
    """The incident decided, with the response triggers it moves (or, replayed, those it moved)."""
    rules = [r.name for r in config.rules.response.triggers if r.category is incident.category]
    before = _decided_before(state, incident.incident_id, position)
    # A replay moves nothing again; it republishes the histories as they stand.
    moved = {} if before is not None else response.signals(config, state.response, incident)
    if moved:
        state = state.model_copy(update={"response": {**state.response, **moved}})
    published = {response.trigger_key(r, state.dedup_key): state.response[r] for r in rules if r in state.response}
    in_force = around.levels.in_force(around.response, incident.received_at, response.hold_of(config), published)
    outcome = _sighted(config, incident, _decide(config, state, incident, around, in_force, before, position))
    return replace(outcome, response=published) if published else outcome


def _sighted(config: Config, incident: Incident, outcome: Outcome) -> Outcome:
    """The correlation parts this incident made its tickets play: new ones recorded with it, and on a
    replay those it recorded the first time."""
    state = outcome.state
    if outcome.verdict is Verdict.applied and outcome.tickets:
        parts = correlation.parts_due(config, state, outcome.tickets)
        if parts:
            state = state.model_copy(update={"sighted": {**state.sighted, incident.incident_id: parts}})
    else:
        parts = state.sighted.get(incident.incident_id, []) if state else []
    if not parts:
        return outcome
    return replace(outcome, state=state, sightings=tuple(correlation.sightings(config, parts, state.tickets)))


class _Forgotten:
    """Decided before (at or below its partition's mark), in a run no longer kept."""


FORGOTTEN = _Forgotten()


def _decided_before(state: KeyState, incident_id: str, position: Position | None) -> Effect | _Forgotten | None:
    """What the incident did when it was decided before; None if it never was."""
    effect = state.recent.get(incident_id)
    if effect is not None:
        return effect
    if position is None or position.offset > state.marks.get(position.partition, -1):
        return None
    for run in reversed(state.runs):
        if run.partition == position.partition and run.first <= position.offset <= run.last:
            return run.effect
    return FORGOTTEN


def _decide(config: Config, state: KeyState, incident: Incident, around: Around,
            in_force: response.InForce | None, before: Effect | _Forgotten | None = None,
            position: Position | None = None) -> Outcome:
    if isinstance(before, Kept):
        return Outcome(Verdict.replayed, state,
                       suppressed=(Suppressed(incident, before.cover, before.source_ticket_id),),
                       reason="incident already suppressed")
    if isinstance(before, Touched):
        return Outcome(Verdict.replayed, state, tuple(state.tickets[t] for t in before.tickets if t in state.tickets),
                       reason="incident already counted")
    if before is FORGOTTEN:
        # Its tickets left by retention, or RUNS later runs pushed its own out: nothing is emitted again.
        return Outcome(Verdict.replayed, state, reason="incident decided before, what it did no longer kept")
    if state.expired_through is not None and incident.received_at <= state.expired_through:
        return Outcome(Verdict.replayed, state, reason="incident of a ticket past retention")
    now = incident.received_at
    effect = response.effects(config, in_force.level if in_force else None)
    incident = response.bumped(incident, effect)
    span = dedup.window(config, incident.source.value)
    seen = dedup.forget_expired(state.seen, now, span)
    match = dedup.match(seen, incident, span)
    if match is not None and match.ticket_id in state.tickets:
        ticket = _newest_successor(state, state.tickets[match.ticket_id])
        if ticket.status is not TicketStatus.closed:
            merged = _watch_if_red(config, _deadlines_follow(config, ticket, add_occurrence(ticket, incident, now),
                                                             now, effect))
            return _record(state, seen, incident, (merged,), (Merged(incident.source.value),), merged.ticket_id,
                           position)
        # After closure the problem is back: a new ticket that points at the closed one.
        route_ = _route(config, incident)
        silence = _silencing(config, around.silences, incident, route_.department)
        kept = _kept_back(config, state, incident, route_.department, silence, around, position)
        if kept is not None:
            return kept
        successor = _opened(config, open_ticket(config, incident, route_, now, previous_ticket_id=ticket.ticket_id),
                            incident, in_force, silence)
        closed = ticket.model_copy(update={
            "successor_ticket_id": successor.ticket_id, "version": ticket.version + 1,
            "history": [*ticket.history, HistoryEntry(at=now, by=PIPELINE, action="recurred",
                                                      note=f"new ticket {successor.ticket_id}",
                                                      event_id=incident.incident_id, kind=HistoryKind.recurred,
                                                      related_ticket_id=successor.ticket_id)]})
        return _record(state, seen, incident, (closed, successor),
                       (Opened(successor.department, successor.severity),), successor.ticket_id, position)
    # The problem came back after the latest ticket's window: link the new ticket to it. A report
    # from before it is an older problem of its own and links to nothing.
    newest = dedup.latest(state.seen)
    previous = newest.ticket_id if newest and incident.observed_at > newest.last_seen_at else None
    route_ = _route(config, incident)
    silence = _silencing(config, around.silences, incident, route_.department)
    kept = _kept_back(config, state, incident, route_.department, silence, around, position)
    if kept is not None:
        return kept
    ticket = _opened(config, open_ticket(config, incident, route_, now, previous_ticket_id=previous), incident,
                     in_force, silence)
    return _record(state, seen, incident, (ticket,), (Opened(ticket.department, ticket.severity),), ticket.ticket_id,
                   position)


def _route(config: Config, incident: Incident):
    return route(config, incident.category, incident.severity, incident.community)


def _silencing(config: Config, silences: tuple[Silence, ...], incident: Incident, department: str):
    return silence_rules.silencing(silences, incident, department, config.rules.maintenance, config.district.tz)


def _kept_back(config: Config, state: KeyState, incident: Incident, department: str,
               silence: silence_rules.Cover | None, around: Around, position: Position | None) -> Outcome | None:
    """A new ticket not opened: a suppress silence or window, or an open ticket that inhibits this one.
    A red incident is never kept back (under a silence it opens quietly; _quiet says so)."""
    if incident.severity is Severity.red:
        return None
    if silence is not None and silence.mode == "suppress":
        return _suppress(state, incident, silence.silence_id, None, position)
    inhibition = silence_rules.inhibiting(config.rules.inhibit, around.inhibitors, incident, department)
    if inhibition is not None:
        return _suppress(state, incident, f"inhibit:{inhibition.rule}", inhibition.ticket_id, position)
    return None


def _suppress(state: KeyState, incident: Incident, cover: str, source_ticket_id: str | None,
              position: Position | None) -> Outcome:
    update = _remembered(state, incident.incident_id,
                         Kept.model_construct(cover=cover, source_ticket_id=source_ticket_id), position)
    return Outcome(Verdict.applied, state.model_copy(update=update), counts=(Silenced(incident.source.value),),
                   suppressed=(Suppressed(incident, cover, source_ticket_id),))


def _opened(config: Config, ticket: Ticket, incident: Incident, in_force: response.InForce | None,
            silence: silence_rules.Cover | None) -> Ticket:
    """A new ticket as the step opens it: under the response level, quiet under a silence, and marked
    as the source of the inhibition rules it matches."""
    ticket = _quiet(_under_response(config, ticket, in_force), silence)
    rules, found = silence_rules.inhibitor_of(config.rules.inhibit, incident, ticket.department)
    return ticket.model_copy(update={"inhibits": rules, "inhibit_labels": found}) if rules else ticket


def _under_response(config: Config, ticket: Ticket, in_force: response.InForce | None) -> Ticket:
    """A ticket opened under an emergency-response level: shorter deadlines, more watchers of red."""
    if in_force is None:
        return ticket
    entry = HistoryEntry(at=ticket.dispatched_at, by=PIPELINE, action="response",
                         note=f"{in_force.level}级应急响应 ({in_force.change.trigger})", kind=HistoryKind.response,
                         level=in_force.level)
    return response.under(ticket, in_force.level, response.effects(config, in_force.level), ticket.dispatched_at,
                          entry)


def _quiet(ticket: Ticket, silence: silence_rules.Cover | None) -> Ticket:
    """A ticket opened under a silence: nothing is notified of it until the silence ends."""
    if silence is None:
        return ticket
    note = (f"红色不屏蔽 red is never suppressed: opened quietly under silence {silence.silence_id}"
            if silence.mode == "suppress" else f"opened quietly under silence {silence.silence_id}")
    return ticket.model_copy(update={
        "silenced_by": silence.silence_id, "quiet_until": silence.ends_at,
        "history": [*ticket.history, HistoryEntry(at=ticket.dispatched_at, by=PIPELINE, action="silenced", note=note,
                                                  kind=HistoryKind.silenced,
                                                  event_id=silence.silence_id)]})


def _newest_successor(state: KeyState, ticket: Ticket) -> Ticket:
    while ticket.successor_ticket_id in state.tickets:
        ticket = state.tickets[ticket.successor_ticket_id]
    return ticket


def _deadlines_follow(config: Config, before: Ticket, ticket: Ticket, now, effect) -> Ticket:
    """A ticket raised in severity runs to the new severity's deadlines, counted from the raise (and shortened
    by the response level in force, as a ticket opened then would be), never later than the ones it had: a
    water level raised from blue to red must be accepted in the red time, not the blue day."""
    if ticket.severity is before.severity:
        return ticket
    accept, resolve = due_dates(config, ticket.category, ticket.severity, now)
    change = {}
    if ticket.status is TicketStatus.dispatched:
        change["accept_due"] = min(ticket.accept_due, response.shortened(now, accept, effect))
    if ticket.status in (TicketStatus.dispatched, TicketStatus.accepted):
        change["resolve_due"] = min(ticket.resolve_due, response.shortened(now, resolve, effect))
    return ticket.model_copy(update=change)


def _watch_if_red(config: Config, ticket: Ticket) -> Ticket:
    if ticket.severity is not Severity.red:
        return ticket
    watchers = list(dict.fromkeys([*ticket.watchers, *red_watchers(config, ticket.department, ticket.severity)]))
    return ticket.model_copy(update={"watchers": watchers})


def _record(state: KeyState, seen, incident: Incident, written: tuple[Ticket, ...], counts: tuple[Count, ...],
            holder: str, position: Position | None) -> Outcome:
    """The state with the written tickets, the incident's span and what it did, in one value."""
    new = state.model_copy(update={
        "tickets": {**state.tickets, **{t.ticket_id: t for t in written}},
        "seen": dedup.remember(seen, incident, holder),
        **_remembered(state, incident.incident_id, Touched.model_construct(tickets=[t.ticket_id for t in written]),
                      position),
    })
    return Outcome(Verdict.applied, new, written, counts=counts)


def _remembered(state: KeyState, incident_id: str, effect: Effect, position: Position | None) -> dict:
    """The fields that record what a newly decided incident did: its id among the RECENT latest, and
    its offset in its partition's mark and runs. Bounded copies, whatever the key has seen. Records
    made here are built without validation (their fields are the step's own values)."""
    last = state.runs[-1] if state.runs else None
    if last is not None and last.effect == effect:
        effect = last.effect  # one object for the run and the ids it holds
    recent = dict(state.recent)
    recent[incident_id] = effect
    while len(recent) > RECENT:
        del recent[next(iter(recent))]
    if position is None:
        return {"recent": recent}
    runs = list(state.runs)
    if last is not None and last.partition == position.partition and last.effect is effect:
        runs[-1] = last.model_copy(update={"last": position.offset})
    else:
        runs.append(Run.model_construct(partition=position.partition, first=position.offset, last=position.offset,
                                        effect=effect))
        del runs[:-RUNS]
    marks = {**state.marks, position.partition: max(position.offset, state.marks.get(position.partition, -1))}
    return {"recent": recent, "runs": runs, "marks": marks}


# ------------------------------------------------------------------ commands

def on_command(config: Config, state: KeyState | None, event: TicketEvent) -> Outcome:
    if event.action is TicketAction.recover and state is not None:
        # To the ticket the offline incident touched: its own, or the open one it became an occurrence of.
        touched = _touched_by(state, event.incident_id or "")
        if touched is not None:
            event = event.model_copy(update={"ticket_id": touched})
    if event.action is TicketAction.clear and state is not None and (newest := dedup.latest(state.seen)):
        # To the key's newest ticket (the sender knows the key, not which ticket its alarms made).
        held = state.tickets.get(newest.ticket_id)
        if held is not None:
            event = event.model_copy(update={"ticket_id": _newest_successor(state, held).ticket_id})
    ticket = state.tickets.get(event.ticket_id) if state else None
    if ticket is None and event.action is TicketAction.expire:
        # Expired already: only the Redis side may be missing.
        return Outcome(Verdict.replayed, state, evicted=(event.ticket_id,), reason="ticket already expired")
    if ticket is None and state is not None and state.expired_through and event.at <= state.expired_through:
        # A command from before the closure of a ticket that has since left by retention.
        return Outcome(Verdict.replayed, state, reason="ticket past retention")
    if ticket is None:
        return Outcome(Verdict.refused, state, reason=f"unknown ticket {event.ticket_id}")
    if event.action is TicketAction.expire:
        return _expire(state, ticket, event)
    outcome = lifecycle.apply(config, ticket, event, event.at)
    if outcome.verdict is Verdict.refused:
        return Outcome(Verdict.refused, state, reason=outcome.reason)
    if outcome.verdict is Verdict.replayed:
        return Outcome(Verdict.replayed, state, (ticket,), reason=outcome.reason)
    changed = outcome.ticket
    counts: tuple[Count, ...] = ()
    if event.action is TicketAction.escalate:
        # Counted for the department whose deadline it was (a supporting part's, the centre's ruling).
        counts = (Escalated(changed.history[-1].department or changed.department, event.stage, event.step),)
    new = state.model_copy(update={"tickets": {**state.tickets, changed.ticket_id: changed}})
    return Outcome(Verdict.applied, new, (changed,), counts=counts)


def _touched_by(state: KeyState, incident_id: str) -> str | None:
    """The latest ticket an incident wrote: from the recent ids, else from the tickets' own lists."""
    effect = state.recent.get(incident_id)
    if isinstance(effect, Touched) and effect.tickets:
        return effect.tickets[-1]
    listing = [t for t in state.tickets.values() if t.incident_id == incident_id or incident_id in t.incident_ids]
    return _newest_successor(state, listing[-1]).ticket_id if listing else None


def _expire(state: KeyState, ticket: Ticket, event: TicketEvent) -> Outcome:
    """A ticket closed past retention leaves the table (it stays on soc.tickets and in Redis by id).
    Refused while the ticket is open or was reopened after the sweep looked."""
    if ticket.status is not TicketStatus.closed or ticket.closed_at is None or ticket.closed_at > event.at:
        return Outcome(Verdict.refused, state, reason="ticket is not closed past retention")
    tickets = {t: v for t, v in state.tickets.items() if t != ticket.ticket_id}
    recent = {i: kept for i, effect in state.recent.items() if (kept := _without(effect, tickets)) is not None}
    runs = [run.model_copy(update={"effect": kept}) for run in state.runs
            if (kept := _without(run.effect, tickets)) is not None]
    seen = [s for s in state.seen if s.ticket_id in tickets]
    # Every report that touched only this ticket arrived before it closed: remembering the closure
    # (not the reports) keeps a replay of them exact. A forgotten key keeps only this time.
    through = max(filter(None, (state.expired_through, ticket.closed_at)))
    sighted = {i: parts for i, parts in state.sighted.items() if any(p.ticket_id in tickets for p in parts)}
    new = state.model_copy(update={"tickets": tickets, "recent": recent, "runs": runs, "seen": seen,
                                   "expired_through": through, "sighted": sighted})
    return Outcome(Verdict.applied, new, evicted=(ticket.ticket_id,))


def _without(effect: Effect, tickets: Mapping[str, Ticket]) -> Effect | None:
    """An effect with the tickets that left dropped (None when it named only those)."""
    if isinstance(effect, Kept):
        return effect
    kept = [t for t in effect.tickets if t in tickets]
    if kept == effect.tickets:
        return effect
    return Touched(tickets=kept) if kept else None


def expire_event(ticket: Ticket, retention: timedelta, now) -> TicketEvent | None:
    """The retention sweep's command for a ticket closed more than `retention` before `now`."""
    if ticket.status is not TicketStatus.closed or ticket.closed_at is None or ticket.closed_at + retention > now:
        return None
    return TicketEvent(event_id=f"expire-{ticket.ticket_id}-{ticket.version}", ticket_id=ticket.ticket_id,
                       action=TicketAction.expire, by=PIPELINE, actor=PIPELINE, at=now)
