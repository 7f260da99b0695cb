"""Topic names and their Kafka settings, shared by the app, the admin set-up and the CLI."""
from dataclasses import dataclass, field

RAW_TOPICS = {s: f"soc.raw.{s}" for s in ("traffic", "flood", "city", "construction")}
SITES = "soc.sites"
SILENCES = "soc.silences"
RESPONSE = "soc.response"
INHIBITORS = "soc.inhibitors"
CAP = "soc.cap"
PLAN_RUNS = "soc.plan-runs"
RESOURCES = "soc.resources"
INCIDENTS = "soc.incidents"
TICKETS = "soc.tickets"
TICKET_EVENTS = "soc.ticket-events"
DEADLETTER = "soc.deadletter"
AUDIT = "soc.audit"
# Photo evidence: one record per image, keyed by its SHA-256 (streams/evidence_store.py).
EVIDENCE = "soc.evidence"

# The Faust tables, name -> changelog partitions (None: the configured default). The app declares
# its tables with these names and counts, and the worker creates their changelogs before it starts:
# - dedup_key_to_tickets: a dedup key and all its tickets, in the partition of soc.incidents and
#   soc.ticket-events that carries that key (the three are co-partitioned);
# (soc.sites, soc.silences, soc.response, soc.inhibitors, soc.cap, soc.plan-runs and soc.resources are read
# whole by every worker, outside Faust: streams/topology/mirror.py.)
TABLES: dict[str, int | None] = {"dedup_key_to_tickets": None}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int | None = None  # None: the configured default
    configs: dict[str, str] = field(default_factory=dict)


COMPACT = {"cleanup.policy": "compact"}
DAY_MS = 24 * 3600 * 1000


def kept(days: int) -> dict[str, str]:
    """A topic that deletes what is older than `days` (Kafka's default is 7 days, set explicitly here)."""
    return {"cleanup.policy": "delete", "retention.ms": str(days * DAY_MS)}


# What the delete topics keep. The raw topics and soc.incidents are the replay window: a worker that was
# away for less than this picks up where it stopped, and `soc rebuild` needs soc.tickets only (compacted).
RAW_RETENTION_DAYS = 7
COMMAND_RETENTION_DAYS = 14
DEADLETTER_RETENTION_DAYS = 30
# Who did what: kept a year (GET /api/audit reads the newest from Redis; the topic is the record).
AUDIT_RETENTION_DAYS = 365


# The largest soc.evidence record (an image of at most handlers.evidence.MAX_STORED_BYTES, its thumbnail and
# header): the topic's max.message.bytes, the evidence producer's max_request_size and its reader's fetch size.
# Kafka refuses a larger record; Tansu (the dev broker) does not check max.message.bytes, so the producer's
# limit is the one that holds there.
EVIDENCE_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def changelog_topic(app_id: str, table: str) -> str:
    """The changelog Faust gives a table (faust.tables.base: `{app.conf.id}-{name}-changelog`;
    the app keeps Faust's default version 1, which adds no `-vN` to the id)."""
    return f"{app_id}-{table}-changelog"


def topic_specs(app_id: str | None = None) -> list[TopicSpec]:
    """Every topic the pipeline needs; with `app_id`, the tables' changelogs too (compacted, like Faust's)."""
    specs = [
        *(TopicSpec(name, None, kept(RAW_RETENTION_DAYS)) for name in RAW_TOPICS.values()),
        # One partition: every worker reads the whole whitelist.
        TopicSpec(SITES, 1, COMPACT),
        TopicSpec(SILENCES, 1, COMPACT),
        TopicSpec(RESPONSE, 1, COMPACT),
        TopicSpec(INHIBITORS, 1, COMPACT),
        TopicSpec(CAP, 1, COMPACT),  # the CAP alerts received, by "<sender>,<identifier>"
        TopicSpec(PLAN_RUNS, 1, COMPACT),  # the plan runs, by run id (their tasks are tickets)
        TopicSpec(RESOURCES, 1, COMPACT),  # who holds each resource, by resource id
        # Co-partitioned, both keyed by the dedup key: an incident and the commands on its tickets
        # meet in the same partition of dedup_key_to_tickets. Keep the same count on both.
        TopicSpec(INCIDENTS, None, kept(RAW_RETENTION_DAYS)),
        TopicSpec(TICKETS, None, COMPACT),
        TopicSpec(TICKET_EVENTS, None, kept(COMMAND_RETENTION_DAYS)),
        TopicSpec(DEADLETTER, 3, kept(DEADLETTER_RETENTION_DAYS)),
        # One partition: one worker records the trail in order.
        TopicSpec(AUDIT, 1, kept(AUDIT_RETENTION_DAYS)),
        # Compacted: an image stays until a tombstone removes it. One partition: few records, each large.
        TopicSpec(EVIDENCE, 1, {**COMPACT, "max.message.bytes": str(EVIDENCE_MAX_MESSAGE_BYTES)}),
    ]
    if app_id is not None:
        specs += [TopicSpec(changelog_topic(app_id, table), partitions, COMPACT) for table, partitions in TABLES.items()]
    return specs
