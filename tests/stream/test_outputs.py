"""A batch's outputs: acknowledged only once the broker has taken every one, sending again what failed."""
from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaTimeoutError

from streams.topology import outputs
from streams.topology.outputs import Outputs


class Producer:
    """Faust's producer as Outputs uses it: send() hands back a future of the broker's acknowledgement.
    The first `failures` sends fail (the first at enqueue, as when metadata cannot be had in time)."""

    def __init__(self, failures: int):
        self.failures, self.sent, self.acks = failures, [], []

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.sent.append((topic, key, value, partition))
        if len(self.sent) == 1 and self.failures:
            self.failures -= 1
            raise KafkaTimeoutError("no metadata")
        acknowledged = asyncio.get_running_loop().create_future()
        self.acks.append(acknowledged)
        if self.failures:
            self.failures -= 1
            acknowledged.set_exception(KafkaTimeoutError("batch expired"))
        return acknowledged


def test_acknowledged_waits_for_every_output_and_sends_again_those_the_producer_gave_up_on(monkeypatch):
    monkeypatch.setattr(outputs, "RESEND_AFTER_S", 0.0)
    producer = Producer(failures=2)

    async def run():
        out = Outputs(producer)
        await out.send("soc.incidents", b"k1", b"v1")
        await out.send("soc.tickets", b"k2", b"v2", partition=3)
        await out.send("soc.tickets", b"k3", b"v3")
        waiting = asyncio.ensure_future(out.acknowledged())
        await asyncio.sleep(0.01)
        assert not waiting.done()  # the third record's acknowledgement is still out
        producer.acks[1].set_result(None)
        # The two that failed were sent again, each as it was.
        await asyncio.sleep(0.01)
        assert producer.sent[3:] == [("soc.incidents", b"k1", b"v1", None), ("soc.tickets", b"k2", b"v2", 3)]
        assert not waiting.done()
        for ack in producer.acks[2:]:
            ack.set_result(None)
        await asyncio.wait_for(waiting, 1)

    asyncio.run(run())
