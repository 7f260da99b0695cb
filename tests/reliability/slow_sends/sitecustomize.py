"""Loaded at start-up by a process that has this directory on PYTHONPATH (the commit-after-send test's
worker): every aiokafka send stalls now and then, as on a broker slow to take records, so whatever
the worker buffers in front of aiokafka fills up. SOC_TEST_SEND_STALLS is `<chance>:<seconds>`."""
import asyncio
import os
import random

import aiokafka

_chance, _seconds = (float(part) for part in os.environ["SOC_TEST_SEND_STALLS"].split(":"))
_send = aiokafka.AIOKafkaProducer.send


async def _stalling_send(self, *args, **kwargs):
    if random.random() < _chance:
        await asyncio.sleep(_seconds)
    return await _send(self, *args, **kwargs)


aiokafka.AIOKafkaProducer.send = _stalling_send
