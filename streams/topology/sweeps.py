"""The sweeps: guarded timers (health.guarded_timer) that look at the store and the mirrored books and send
commands to the tickets' keys, each by the worker that owns the key and each once (again only if lost),
so the ticket step decides them like any other input; and the gauges."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

from handlers import escalation, heartbeat, hotspots, performance, plans, preventive, response, ticketing
from schemas.response import NUMBER
from streams.stats_store import StatsStore
from streams.topology.pipeline import Pipeline

# The window the on-time gauge covers (the API takes any window).
PERFORMANCE_WINDOW = timedelta(days=30)
# A warning period whose every place this worker owns has its preventive ticket is looked at again only after
# this long (every ticket's facts are read to find the places): a partition this worker takes over meanwhile
# gets its places' tickets within it.
PREVENTIVE_RECHECK = timedelta(seconds=60)


def add_timers(p: Pipeline, timer) -> None:
    """Each sweep as a timer; `timer` is the health's guarded_timer."""
    interval = p.settings.escalation_interval_s
    timer(interval, "escalate_overdue_tickets")(lambda: escalate_overdue_tickets(p))
    timer(interval, "respond_open_tickets")(lambda: respond_open_tickets(p))
    timer(interval, "activate_plans")(lambda: activate_plans(p))
    timer(interval, "open_preventive_tickets")(lambda: open_preventive_tickets(p))
    timer(interval, "watch_devices")(lambda: watch_devices(p))
    timer(interval, "notice_all_clear")(lambda: notice_all_clear(p))
    timer(p.settings.retention_interval_s, "expire_closed_tickets")(lambda: expire_closed_tickets(p))
    timer(p.settings.gauges_interval_s, "refresh_gauges")(lambda: refresh_gauges(p))
    timer(interval, "keep_up_cap_signals")(p.warnings.keep_up)


async def escalate_overdue_tickets(p: Pipeline) -> None:
    """The tickets the due index says are due, in this worker's partitions only, each step once."""
    if p.app.rebalancing:
        return
    now = p.clock()
    sent = p.sent_steps
    due_now: set[str] = set()
    for ticket in await p.store.many(await p.store.due_ids(now)):
        if not p.owns(ticket.dedup_key):
            continue
        for step in escalation.due_steps(p.config, ticket, now):
            event = escalation.escalation_event(ticket, step, now)
            due_now.add(event.event_id)
            if sent.should_send(event.event_id, now):
                p.send_command(event, ticket.dedup_key)
    sent.keep_only(due_now)


async def respond_open_tickets(p: Pipeline) -> None:
    """Under a `retroactive` response level, the open tickets opened before it (owner partitions
    only) get its deadlines: each once, by the change that set the level. Reads the open tickets only
    while such a level is in force."""
    if p.app.rebalancing:
        return
    now = p.clock()
    in_force = response.in_force(p.books.response.by_key(), now, response.hold_of(p.config))
    wanted: set[str] = set()
    if in_force is not None and response.retroactive(p.config, in_force.level):
        for ticket in await p.store.many(await p.store.open_ids()):
            event = response.retroactive_event(p.config, ticket, in_force, now)
            if event is None or not p.owns(ticket.dedup_key):
                continue
            wanted.add(event.event_id + ticket.ticket_id)
            if p.sent_responses.should_send(event.event_id + ticket.ticket_id, now):
                p.send_command(event, ticket.dedup_key)
    p.sent_responses.keep_only(wanted)


async def activate_plans(p: Pipeline) -> None:
    """The level-triggered plans whose level stands now: each start sent to its run's key by the worker
    that owns it, once (again only if lost); the run's key starts it once, whoever sends it."""
    if p.app.rebalancing:
        return
    now = p.clock()
    wanted: set[str] = set()
    for activation in plans.level_activations(p.config, p.books.response.by_key(), now):
        key = plans.run_key(activation.run_id)
        if p.books.plan_runs.get(activation.run_id) is not None or not p.owns(key):
            continue
        wanted.add(activation.event_id)
        if p.sent_activations.should_send(activation.event_id, now):
            p.topics.ticket_events.send_soon(key=key.encode(), value=activation.model_dump_json().encode())
    p.sent_activations.keep_only(wanted)


async def open_preventive_tickets(p: Pipeline) -> None:
    """While a warning period is on (handlers/preventive.py), each recurring place's preventive ticket not
    yet opened: its opening sent to its key by the worker that owns it, once (again only if lost); the
    key opens one ticket, whoever sends. The tickets' facts are read only while a period is on and, once
    every place this worker owns has its ticket, once per PREVENTIVE_RECHECK."""
    if p.app.rebalancing or not p.config.rules.preventive or not p.warnings.mirror.ready.is_set():
        return
    now = p.clock()
    histories, records = p.books.response.by_key(), p.books.cap.all()
    on = preventive.periods(p.config, histories, records, now)
    done = p.preventive_done
    for period_id in [i for i in done if i not in {period.id for period in on}]:
        del done[period_id]
    due = [period for period in on if period.id not in done or now - done[period.id] >= PREVENTIVE_RECHECK]
    if not due:
        return
    stored = await StatsStore.beside(p.store).facts_by_id()
    found = hotspots.sightings({i: performance.stored_facts(raw) for i, raw in stored.items()})
    every_storm = hotspots.storms(histories, response.hold_of(p.config), hotspots.rainstorm_warnings(records))
    wanted: set[str] = set()
    for period in due:
        owned = [c for c in preventive.openings(p.config, period,
                                                preventive.places(p.config, period, found, every_storm, now), now)
                 if p.owns(preventive.key_of(c))]
        opened = {t.ticket_id for t in await p.store.many([preventive.ticket_id_of(p.config, c) for c in owned])}
        missing = [c for c in owned if preventive.ticket_id_of(p.config, c) not in opened]
        if not missing:
            done[period.id] = now
        for command in missing:
            wanted.add(command.event_id)
            if p.sent_preventive.should_send(command.event_id, now):
                p.topics.ticket_events.send_soon(key=preventive.key_of(command).encode(),
                                                 value=command.model_dump_json().encode())
    p.sent_preventive.keep_only(wanted)


async def watch_devices(p: Pipeline) -> None:
    """Devices silent past their heartbeat raise a *_device_offline incident, and devices offline that
    reported again send `recover` (owner partitions only; each incident and command is named by the
    silence, so any worker and any tick builds the same). Silence is judged against the newest heartbeat
    of the device's kind, not the clock: a worker catching up on a backlog after an outage sees its
    devices in step, not every one of them silent (a whole source gone quiet is SocSourceSilent's)."""
    if p.app.rebalancing:
        return
    rules = p.config.rules.heartbeats
    marks = await p.store.offline()
    for kind, rule in rules.kinds.items():
        newest = await p.store.newest_heard(kind)
        if newest is None:
            continue
        for device, last in await p.store.heard_before(kind, newest - rule.silent_after):
            if device in rules.retired:
                await p.store.forget_device(kind, device)
            elif marks.get((kind, device)) != last and (place := await p.store.place(kind, device)):
                incident = heartbeat.offline_incident(p.config, kind, device, *place, last)
                if p.owns(incident.dedup_key):
                    p.topics.incidents.send_soon(key=incident.dedup_key.encode(),
                                                 value=incident.model_dump_json().encode())
                    await p.store.mark_offline(kind, device, last)
    for (kind, device), last in marks.items():
        if heartbeat.tracked(p.config, kind, device) is None:
            await p.store.forget_device(kind, device)
            continue
        [heard] = await p.store.last_heard(kind, [device])
        if heard is None or heard <= last or not (place := await p.store.place(kind, device)):
            continue
        incident = heartbeat.offline_incident(p.config, kind, device, *place, last)
        if p.owns(incident.dedup_key):
            p.send_command(heartbeat.recover_event(incident, heard), incident.dedup_key)
            await p.store.unmark_offline(kind, device)
    silent = Counter(kind.split(".", 1)[0] for kind, _ in await p.store.offline())
    for source in heartbeat.OFFLINE:
        p.metrics.devices_silent.labels(source).set(silent.get(source, 0))


async def notice_all_clear(p: Pipeline) -> None:
    """A device whose readings stayed normal long enough after its last alarm sends `clear` to the
    ticket of that alarm's key (owner partitions only), once per alarm. Never closes anything."""
    if p.app.rebalancing or not p.config.rules.all_clear:
        return
    for kind, device, alarm_at, key, sent_for in await p.store.alarms():
        if sent_for == alarm_at or not key or not p.owns(key):
            continue
        event = heartbeat.all_clear_event(p.config, kind, key, alarm_at, await p.store.calm_since(kind, device, alarm_at))
        if event is not None:
            p.send_command(event, key)
            await p.store.mark_cleared(kind, device, alarm_at)


async def expire_closed_tickets(p: Pipeline) -> None:
    """Tickets closed past retention leave the table and the hot sets (owner partitions only)."""
    if p.app.rebalancing:
        return
    now = p.clock()
    retention = timedelta(days=p.settings.ticket_retention_days)
    for ticket in await p.store.many(await p.store.closed_before(now - retention)):
        event = ticketing.expire_event(ticket, retention, now)
        if event is not None and p.owns(ticket.dedup_key):
            p.send_command(event, ticket.dedup_key)
    await p.store.forget_silenced(now - retention)
    if p.notifier is not None:
        await p.notifier.store.trim(now)


async def refresh_gauges(p: Pipeline) -> None:
    """Open tickets and the departments' rates from the store's gauge facts, the same figures every worker sees;
    the response level from the table every worker holds."""
    now = p.clock()
    level = response.in_force(p.books.response.by_key(), now, response.hold_of(p.config))
    p.metrics.response_level.set(NUMBER[level.level] if level else 0)
    figures = performance.gauges(await p.store.gauge_facts(), now - PERFORMANCE_WINDOW, now, now,
                                 p.config.routing.followup.basically_satisfied_counts)
    p.metrics.tickets_open.clear()
    for (department, severity), count in figures.open_tickets.items():
        p.metrics.tickets_open.labels(department, severity).set(count)
    # Cleared like the open counts: a department with no figure now (its tickets left the window, or
    # none is due yet) must lose its series, not show its last ratio for ever. No await between the
    # clear and the sets, so no scrape sees the gauge half written.
    p.metrics.on_time_ratio.clear()
    p.metrics.department_ratio.clear()
    for department, rates in figures.rates.items():
        if rates["on_time_handling"] is not None:
            p.metrics.on_time_ratio.labels(department).set(rates["on_time_handling"])
        for rate, value in rates.items():
            if value is not None:
                p.metrics.department_ratio.labels(department, rate).set(value)
