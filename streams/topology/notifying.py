"""soc.tickets --notify_ticket_changes--> the notifier's queues --send_notifications--> the channels
(streams/topology/notifier.py)."""
from __future__ import annotations

from handlers import notify
from handlers.intake import Rejected
from schemas.records import Ticket
from streams.chat_cards import DingTalkApp, FeishuApp, WeComApp
from streams.notify_store import NotificationStore
from streams.topology import faust_compat
from streams.topology.notifier import HORIZON, Notifier
from streams.topology.outputs import Outputs
from streams.topology.pipeline import BATCH, BATCH_WITHIN_S, Pipeline


def add_notifier(p: Pipeline, rules: notify.Rules, agent, timer) -> None:
    """The notifier of `rules`, its agent and its sending timer; `agent` and `timer`: the health's."""
    settings, store, app = p.settings, p.store, p.app
    notifier = Notifier(rules, NotificationStore(store.redis, store.prefix, HORIZON), p.clock, p.metrics,
                        p.send_dead_letter, DingTalkApp.from_settings(settings),
                        WeComApp.from_settings(settings), FeishuApp.from_settings(settings))
    p.notifier = notifier
    p.agents["notify_ticket_changes"] = agent(p.topics.tickets, "notify_ticket_changes")(
        _notify_ticket_changes(p, notifier))
    timer(settings.notify_interval_s, "send_notifications")(notifier.send_due)

    @app.on_before_shutdown.connect
    async def close_notifier(app, **kwargs) -> None:
        await notifier.close()


def _notify_ticket_changes(p: Pipeline, notifier: Notifier):
    async def notify_ticket_changes(stream):
        """Per batch: the latest version of each ticket, its deliveries queued once (handlers.notify)."""
        async for events in faust_compat.finished_batches(stream, BATCH, BATCH_WITHIN_S):
            latest: dict[str, Ticket] = {}
            out = Outputs(p.app.producer)
            for event in events:
                message = event.message
                if message.value is None:
                    continue
                try:
                    ticket = Ticket.model_validate_json(message.value)
                except ValueError as exc:
                    await p.dead_letter("tickets", message, Rejected("invalid", f"{type(exc).__name__}: {str(exc)[:400]}"),
                                        out)
                    continue
                # Each version's history holds every earlier one's: the newest is enough.
                if ticket.ticket_id not in latest or latest[ticket.ticket_id].version < ticket.version:
                    latest[ticket.ticket_id] = ticket
            await notifier.take(list(latest.values()))
            await out.acknowledged()

    return notify_ticket_changes
