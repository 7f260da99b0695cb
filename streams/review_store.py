"""The written parts of reviews (schemas/review.py) in Redis, beside the ticket store.

- ``<prefix>:review:<review_id>`` (hash): ``version`` and ``json``, the current version;
- ``<prefix>:review:<review_id>:versions`` (list): every version ever written, oldest first: the trail of
  who changed what and when (the audit topic has the same writes, without their text).

A write names the version it changes: two people editing at once do not overwrite each other silently, the
second gets a 409 and the version now in force.
"""
from __future__ import annotations

import redis.asyncio as aioredis

from schemas.review import Written

# KEYS: the review's hash, its versions. ARGV: the version the write changes, the new version's JSON.
# Returns the new version, or -(the version in force) when the write named another.
WRITE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then return -current - 1 end
redis.call('HSET', KEYS[1], 'version', current + 1, 'json', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[2])
return current + 1
"""


class ReviewStore:
    def __init__(self, client: aioredis.Redis, prefix: str):
        self.redis = client
        self.prefix = prefix
        self._write = client.register_script(WRITE)

    @classmethod
    def beside(cls, store) -> ReviewStore:
        return cls(store.redis, store.prefix)

    def key(self, review_id: str, *parts: str) -> str:
        return ":".join((self.prefix, "review", review_id, *parts))

    async def current(self, review_id: str) -> Written | None:
        raw = await self.redis.hget(self.key(review_id), "json")
        return Written.model_validate_json(raw) if raw is not None else None

    async def versions(self, review_id: str) -> list[Written]:
        return [Written.model_validate_json(r) for r in await self.redis.lrange(self.key(review_id, "versions"), 0, -1)]

    async def write(self, written: Written) -> int | None:
        """Store `written` as the version after `written.version - 1`; None when another version is in force."""
        found = int(await self._write(keys=[self.key(written.review_id), self.key(written.review_id, "versions")],
                                      args=[written.version - 1, written.model_dump_json()]))
        return found if found > 0 else None
