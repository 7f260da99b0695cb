"""What one batch of inputs sends, owned by the agent that sends it: an input's offset is committed
only after every output it caused is acknowledged by the broker (the producer's acks=all).

Faust's `send_soon` queues a record in its producer buffer, and the commit relies on flushing that
buffer first; but `ProducerBuffer.flush_atmost` gives up after a 0.1 s wait with records still queued,
so behind a slow producer a commit passed outputs not yet sent, and a kill -9 then lost them for good
(tests/reliability/test_commit_after_send.py). Here each record goes straight to aiokafka, which
batches it with the rest, and the agent awaits every acknowledgement before its batch is acked."""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("soc.pipeline")

# A record the producer gave up on (the broker gone past its retries) is sent again after this long,
# growing to the longest; the batch waits meanwhile, and the worker goes on once the broker is back.
RESEND_AFTER_S = 0.5
RESEND_AFTER_AT_MOST_S = 5.0

Record = tuple[str, bytes | None, bytes | None, int | None]


class Outputs:
    def __init__(self, producer):
        self._producer = producer  # the app's Faust producer (its aiokafka producer underneath)
        self._pending: list[tuple[Record, asyncio.Future]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        """Hand the record to the producer (waiting only if its batches are full); acknowledged later."""
        record = (topic, key, value, partition)
        try:
            sent = await self._producer.send(topic, key, value, partition, None, None)
        except Exception as exc:  # no metadata for the topic in time (the broker gone): sent again later
            sent = asyncio.get_running_loop().create_future()
            sent.set_exception(exc)
        self._pending.append((record, sent))

    async def acknowledged(self) -> None:
        """Wait until the broker has acknowledged everything sent so far, sending again what failed."""
        wait = RESEND_AFTER_S
        while self._pending:
            pending, self._pending = self._pending, []
            results = await asyncio.gather(*(sent for _, sent in pending), return_exceptions=True)
            failed = [record for (record, _), result in zip(pending, results) if isinstance(result, BaseException)]
            if not failed:
                return
            if any(isinstance(result, asyncio.CancelledError) for result in results):
                raise asyncio.CancelledError()
            error = next(r for r in results if isinstance(r, BaseException))
            log.warning("outputs not acknowledged by the broker: sending them again",
                        extra={"records": len(failed), "topic": failed[0][0],
                               "error": f"{type(error).__name__}: {error}"})
            await asyncio.sleep(wait)
            wait = min(wait * 2, RESEND_AFTER_AT_MOST_S)
            for record in failed:
                await self.send(*record)
