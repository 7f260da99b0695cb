"""Faust's consumer bookkeeping, read and repaired by the partition guards (watchdog.py): its committed,
read and acked offsets, the records in flight and waiting in the agents' channels, and its aiokafka
consumer, which lives in Faust's consumer thread. Private parts of Faust, pinned by
tests/stream/test_faust_compat.py."""
from __future__ import annotations

import asyncio


def committed_offset(app, tp) -> int | None:
    """The offset the commit of `tp` stands at, as Faust keeps it: None before its first commit (and
    for a commit of 0, which Faust records the same)."""
    return app.consumer._committed_offset.get(tp)


def set_committed_offset(app, tp, offset: int) -> None:
    """Take `offset` as where the commit of `tp` stands: the commit checks for holes from there
    (commit_only_what_was_processed) and acks before it are refused."""
    app.consumer._committed_offset[tp] = offset


def read_offset(app, tp) -> int | None:
    """The last offset of `tp` Faust delivered, or after a seek the next one due; None after an
    assignment until a record arrives (and after a seek to 0)."""
    return app.consumer._read_offset.get(tp)


def acked_offsets(app, tp) -> list[int]:
    """The offsets of `tp` acked and not committed yet."""
    return list(app.consumer._acked.get(tp) or ())


def start_over(app, tp, committed: int) -> None:
    """Forget the acks and gaps of `tp` and take `committed` as its commit: the broker lost the records
    they counted (a restarted Tansu)."""
    consumer = app.consumer
    for offsets in (consumer._acked, consumer._acked_index, consumer._gap):
        offsets.pop(tp, None)
    consumer._committed_offset[tp] = committed


def in_flight(app) -> set:
    """The partitions with a record a stream has taken and not acked."""
    return {message.tp for message in list(app.consumer._unacked_messages)}


def waiting_for_agents(app) -> dict:
    """The lowest offset of each partition with records Faust delivered into an agent's channel that its
    stream has not taken yet. Faust counts a record as in flight (in_flight) only once a stream takes it from
    the channel's queue, and the read offset moves on when it is queued: a busy agent's backlog looked like
    records read and dropped. Read again every look, the backlog was queued twice over while the agent was
    still working through it, and a worker restarted behind a slow producer never committed again."""
    channels = {id(channel): channel for subscribed in list(app.topics._tp_index.values()) for channel in subscribed}
    lowest: dict = {}  # partition -> the lowest offset waiting
    for channel in channels.values():
        for event in list(channel.queue._queue):
            tp, offset = event.message.tp, event.message.offset
            lowest[tp] = min(offset, lowest.get(tp, offset))
    return lowest


async def ask_consumer(app, method: str, *args, within: float):
    """Call the aiokafka consumer in Faust's consumer thread (Faust exposes it only so), within `within`
    seconds: a call waiting on the broker holds one of the thread's few method workers, and Faust's own
    commits queue behind it; a caller that gives up (an exception) asks again later."""
    thread = app.consumer._thread
    client = thread._ensure_consumer()
    return await asyncio.wait_for(thread.call_thread(getattr(client, method), *args), within)


def consumer_thread_loop(app):
    """The event loop of Faust's consumer thread (awaiting.py lists its tasks)."""
    return app.consumer._thread.thread_loop
