"""Open311's request records in Redis (`<prefix>:open311:req:<id>`, and `<prefix>:open311:requests`, the
time index): written by the POST view and by `soc rebuild`, read by the status views."""
from __future__ import annotations

from datetime import datetime, timedelta

import orjson

from streams.store import TicketStore, millis

KEEP_REQUESTS = timedelta(days=400)


def request_key(store: TicketStore, request_id: str) -> str:
    return store.key("open311", "req", request_id)


def index_key(store: TicketStore) -> str:
    return store.key("open311", "requests")


async def keep(store: TicketStore, record: dict, now: datetime) -> None:
    """A request's record (handlers.open311.record) and its place in the time index."""
    request_id = record["service_request_id"]
    async with store.redis.pipeline(transaction=True) as pipe:
        pipe.set(request_key(store, request_id), orjson.dumps(record), ex=int(KEEP_REQUESTS.total_seconds()))
        pipe.zadd(index_key(store), {request_id: millis(datetime.fromisoformat(record["requested_datetime"]))})
        pipe.zremrangebyscore(index_key(store), "-inf", millis(now - KEEP_REQUESTS))
        await pipe.execute()
