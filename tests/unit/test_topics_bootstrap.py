"""The topic contract and the worker's start-up check, without a broker."""
from __future__ import annotations

import pytest

from streams import topics
from streams.ops.bootstrap import Mismatch, TopicMismatch, mismatches, resolve


def by_name(specs, partitions=8):
    return resolve(specs, partitions)


def test_incidents_and_ticket_events_are_co_partitioned_for_any_configured_count():
    for partitions in (1, 3, 8, 24):
        wanted = by_name(topics.topic_specs("soc-pipeline"), partitions)
        incidents, events = wanted[topics.INCIDENTS], wanted[topics.TICKET_EVENTS]
        assert incidents.partitions == events.partitions == partitions
        # The keyed table lives in the same partitions as the two topics whose keys it holds.
        table = wanted[topics.changelog_topic("soc-pipeline", "dedup_key_to_tickets")]
        assert table.partitions == partitions
        assert incidents.configured and events.configured and table.configured


def test_compacted_topics_and_changelogs():
    wanted = by_name(topics.topic_specs("soc-pipeline"))
    compacted = {name for name, w in wanted.items() if w.configs.get("cleanup.policy") == "compact"}
    assert compacted == {
        topics.SITES, topics.SILENCES, topics.RESPONSE, topics.INHIBITORS, topics.CAP, topics.PLAN_RUNS, topics.RESOURCES,
        topics.TICKETS,
        topics.EVIDENCE,
        "soc-pipeline-dedup_key_to_tickets-changelog",

    }
    # An image is one record: the topic takes the largest the evidence producer may send.
    assert wanted[topics.EVIDENCE].configs["max.message.bytes"] == str(topics.EVIDENCE_MAX_MESSAGE_BYTES)
    # The rest delete by age, each with its retention.
    days = {name: int(w.configs["retention.ms"]) // topics.DAY_MS for name, w in wanted.items() if name not in compacted}
    assert all(wanted[n].configs["cleanup.policy"] == "delete" for n in days)
    assert days == {**{name: 7 for name in topics.RAW_TOPICS.values()}, topics.INCIDENTS: 7, topics.TICKET_EVENTS: 14,
                    topics.DEADLETTER: 30, topics.AUDIT: 365}


@pytest.mark.parametrize("replication, insync", [(1, None), (2, "1"), (3, "2")])
def test_replicated_topics_are_created_with_min_insync_replicas(replication, insync):
    from streams.ops.bootstrap import durable
    configs = durable(topics.COMPACT, replication)
    assert configs.get("min.insync.replicas") == insync and configs["cleanup.policy"] == "compact"


def test_fixed_partition_counts():
    wanted = by_name(topics.topic_specs("soc-pipeline"), 8)
    assert wanted[topics.SITES].partitions == 1  # every worker reads the whole whitelist
    assert wanted[topics.SILENCES].partitions == wanted[topics.RESPONSE].partitions == 1
    assert wanted[topics.DEADLETTER].partitions == 3
    assert not wanted[topics.SITES].configured


def test_changelog_names_follow_faust_and_the_app_id():
    assert topics.changelog_topic("soc-x", "dedup_key_to_tickets") == "soc-x-dedup_key_to_tickets-changelog"
    names = {spec.name for spec in topics.topic_specs("soc-x")}
    assert {f"soc-x-{table}-changelog" for table in topics.TABLES} <= names
    # Without an app id, only the pipeline's own topics (what create_topics made before).
    assert not any(spec.name.endswith("-changelog") for spec in topics.topic_specs())


def test_every_topic_once():
    names = [spec.name for spec in topics.topic_specs("soc-pipeline")]
    assert len(names) == len(set(names))
    assert set(topics.RAW_TOPICS.values()) <= set(names)


def test_mismatch_message_names_topic_count_and_expected():
    wanted = by_name(topics.topic_specs("soc-pipeline"), 8)
    found = mismatches(wanted, {topics.INCIDENTS: 4, topics.TICKET_EVENTS: 8, topics.SITES: 1})
    assert found == [Mismatch(topics.INCIDENTS, 4, 8, True)]
    error = TopicMismatch(found)
    assert str(error) == "topic soc.incidents has 4 partitions, expected 8 (SOC_PARTITIONS)"
    assert error.lines == [str(error)]


def test_mismatch_of_a_fixed_count_does_not_blame_the_setting():
    wanted = by_name(topics.topic_specs("soc-pipeline"), 8)
    found = mismatches(wanted, {topics.SITES: 8, topics.INCIDENTS: 1})
    assert [str(m) for m in found] == [
        "topic soc.sites has 8 partitions, expected 1",
        "topic soc.incidents has 1 partition, expected 8 (SOC_PARTITIONS)",
    ]
    assert TopicMismatch(found).lines == [str(m) for m in found]


def test_missing_topics_are_not_mismatches():
    assert mismatches(by_name(topics.topic_specs("soc-pipeline")), {}) == []


@pytest.mark.parametrize("partitions", [2, 8])
def test_first_spec_of_a_name_wins(partitions):
    wanted = resolve([topics.TopicSpec("a", None), topics.TopicSpec("a", 5)], partitions)
    assert wanted["a"].partitions == partitions


class RacingAdmin:
    """A broker where another worker creates every topic between our describe and our create."""

    def __init__(self, their_partitions: int):
        self.topics: dict[str, int] = {}
        self.their_partitions = their_partitions
        self.closed = False

    def describe_topics(self, names):
        return [{"name": n, "error_code": 0, "is_internal": False, "partitions": [{}] * self.topics[n]}
                if n in self.topics else {"name": n, "error_code": 3, "is_internal": False, "partitions": []}
                for n in names]

    def create_topics(self, new_topics, timeout_ms=None):
        from kafka.errors import TopicAlreadyExistsError

        for topic in new_topics:
            self.topics[topic.name] = self.their_partitions  # the other worker was first
        raise TopicAlreadyExistsError("Topic with this name already exists.")

    def close(self):
        self.closed = True


@pytest.mark.parametrize("their_partitions, mismatch", [(8, False), (4, True)])
def test_a_topic_created_meanwhile_by_another_worker_is_checked_again(monkeypatch, their_partitions, mismatch):
    from streams.ops import bootstrap

    admin = RacingAdmin(their_partitions)
    monkeypatch.setattr(bootstrap, "_connect", lambda servers, deadline, security=None: admin)
    specs = [topics.TopicSpec(topics.INCIDENTS)]
    if mismatch:
        with pytest.raises(TopicMismatch, match=r"^topic soc.incidents has 4 partitions, expected 8 \(SOC_PARTITIONS\)$"):
            bootstrap.ensure_topics(["broker:9092"], 8, 1, specs, timeout=5)
    else:
        assert bootstrap.ensure_topics(["broker:9092"], 8, 1, specs, timeout=5) == []  # not ours: not created here
    assert admin.closed
