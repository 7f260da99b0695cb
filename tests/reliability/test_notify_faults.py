"""Notifications under kill -9: every dispatched ticket reaches the ops centre's webhook at least once,
and a crash between a send and its record repeats at most the one message that was in flight."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.integration.test_notify_pipeline import Receivers, notifying_pipeline
from tests.reliability.test_faults import kill_and_restart, problems, reflected, send_paced
from tests.support import poll, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def webhook_items(receivers: Receivers) -> list[tuple[str, list[str]]]:
    """(message id, the notification ids it carried) per accepted webhook message, in arrival order."""
    found = []
    for body in list(receivers.accepted["webhook"]):
        ids = [item["id"] for item in body["items"]] if body["event"] == "digest" else [body["id"]]
        found.append((body["id"], ids))
    return found


def test_two_kills_while_notifying_lose_nothing_and_repeat_at_most_the_messages_in_flight(tmp_path_factory, unique):
    receivers = Receivers()
    try:
        with notifying_pipeline(tmp_path_factory.mktemp("notify-faults"), receivers, give_up_after_s=600,
                                SOC_SESSION_TIMEOUT_S="6", SOC_HEARTBEAT_INTERVAL_S="2") as pipeline:
            events, groups = problems(unique, 100)
            sender = send_paced(pipeline, events, rate=5)  # 60 s of reports: the kills land mid-stream
            for _ in range(2):
                before = len(webhook_items(receivers))
                poll(lambda: len(webhook_items(receivers)) >= before + 1, 90, "notifications flowing")
                kill_and_restart(pipeline)
                wait_ready(pipeline.worker)
                receivers.accepted["webhook"].append({"id": "--restart--", "event": "marker"})
            sender.join(120)
            tickets = poll(lambda: (lambda ts: ts if len(ts) == len(groups) else None)(reflected(pipeline, groups)),
                           120, "every problem ticketed")
            wanted = {f"{t.ticket_id}:dispatched:dispatch" for t in tickets}

            def arrived():
                carried = Counter(i for _, ids in webhook_items(receivers) if ids for i in ids)
                return carried if wanted <= set(carried) else None

            try:
                carried = poll(arrived, 120, "a dispatch notification of every ticket at the webhook", interval=0.5)
            except BaseException:
                got = {i for _, ids in webhook_items(receivers) for i in ids}
                for missing in sorted(wanted - got)[:5]:
                    delivery = f"ops_centre/{missing}"
                    print("MISSING", missing, pipeline.redis.zscore(pipeline.key("notify", "known"), delivery),
                          pipeline.redis.lrange(pipeline.key("notify", "log", "ticket", missing.split(":")[0]), 0, -1))
                print(pipeline.worker.log_tail(60))
                raise
    finally:
        receivers.stop()
    repeated = {i for i in wanted if carried[i] > 1}
    # What a kill can repeat: the message it interrupted, which the restarted worker sends again.
    messages = [ids for message_id, ids in webhook_items(receivers) if message_id != "--restart--"]
    in_flight = sorted((m for m in messages if set(m) & repeated), key=len, reverse=True)[:2]
    assert repeated <= {i for m in in_flight for i in m}, (repeated, in_flight)
    print(f"notify faults: {len(wanted)} dispatch notifications, 2 kills: {len(repeated)} repeated "
          f"({json.dumps(sorted(repeated))[:200]}), none lost")
