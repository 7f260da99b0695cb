"""Topic names and their Kafka settings, shared by the app, the admin set-up and the CLI."""
from dataclasses import dataclass, field

RAW_TOPICS = {s: f"soc.raw.{s}" for s in ("traffic", "flood", "city", "construction")}
SITES = "soc.sites"
INCIDENTS = "soc.incidents"
TICKETS = "soc.tickets"
TICKET_EVENTS = "soc.ticket-events"
DEADLETTER = "soc.deadletter"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int | None = None  # None: the configured default
    configs: dict[str, str] = field(default_factory=dict)


COMPACT = {"cleanup.policy": "compact"}


def topic_specs() -> list[TopicSpec]:
    return [
        *(TopicSpec(name) for name in RAW_TOPICS.values()),
        # One partition: every worker reads the whole whitelist.
        TopicSpec(SITES, 1, COMPACT),
        TopicSpec(INCIDENTS),
        TopicSpec(TICKETS, None, COMPACT),
        TopicSpec(TICKET_EVENTS),
        TopicSpec(DEADLETTER, 3),
    ]
