"""The live board's streams share one Redis reader per worker: it reads the board's Redis stream once
and hands each entry to every open SSE stream that may see it (a pub/sub hub), so a stream holds a slot
in memory, never a Redis connection. Slots are counted per person, per role and in all, and the last
ones are kept for the centre's duty officers and the wall screens (district.yaml `board_streams`)."""
from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas.accounts import UserRole
from schemas.config import BoardStreams
from schemas.records import Ticket

log = logging.getLogger("soc.board")

# Shorter than the Redis client's 5 s socket timeout, which a longer block would hit.
READ_BLOCK_S = 3.0
# How often closed connections are looked for: a board closed in the browser frees its slot this soon.
SWEEP_S = 0.25
# Entries waiting for one stream past which it has fallen behind and is ended (its browser comes
# back with Last-Event-ID and catches up from Redis).
MAX_BACKLOG = 5_000
READ_COUNT = 500
# Streams being opened at once (signed in, snapshot read from Redis), and how long one waits for its
# turn: a crowd of boards opening together queues here, not for the connections the API needs.
OPENING_AT_ONCE = 16
OPENING_WAIT_S = 20.0
# Streams closed since the most open at once past which the freed memory is handed back to the system.
RELEASE_AFTER = 64

ROLE_NAMES = {UserRole.clerk: "经办人", UserRole.supervisor: "科室负责人", UserRole.duty_officer: "值班员",
              UserRole.leader: "街道领导", UserRole.admin: "管理员", UserRole.service: "服务凭据"}


@dataclass(frozen=True, order=True)
class EntryId:
    """A Redis stream entry id, ordered as Redis orders them."""

    ms: int
    seq: int

    @classmethod
    def parse(cls, text: str) -> EntryId | None:
        ms, dash, seq = text.partition("-")
        if not (ms.isascii() and ms.isdigit() and (not dash or (seq.isascii() and seq.isdigit()))):
            return None
        parsed = cls(int(ms), int(seq or 0))
        return parsed if parsed.ms < 2**64 and parsed.seq < 2**64 else None

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"


ZERO = EntryId(0, 0)


@dataclass(frozen=True)
class BoardEntry:
    """One board event, decoded once for every stream: the ticket (None if this version cannot read
    it: only streams that read everything get it) and the SSE block every stream sends as is."""

    entry_id: EntryId
    ticket: Ticket | None
    frame: bytes


def sse(event: str | None, data: bytes, event_id: str | None = None) -> bytes:
    head = b""
    if event_id:
        head += b"id: " + event_id.encode() + b"\n"
    if event:
        head += b"event: " + event.encode() + b"\n"
    return head + b"data: " + data + b"\n\n"


def board_entry(raw_id: bytes, fields: dict[bytes, bytes]) -> BoardEntry:
    entry_id = raw_id.decode()
    try:
        ticket = Ticket.model_validate_json(fields[b"json"])
    except (ValidationError, KeyError):
        log.warning("board entry this worker cannot read: shown only to boards that read everything",
                    extra={"entry_id": entry_id})
        ticket = None
    data = (b'{"kind":' + orjson.dumps(fields.get(b"kind", b"").decode("utf-8", "replace"))
            + b',"ticket":' + fields.get(b"json", b"null") + b"}")
    return BoardEntry(EntryId.parse(entry_id) or ZERO, ticket, sse("ticket", data, entry_id))


class Refused(Exception):
    """A stream not taken: 429 when it is the caller's own limit, 503 when the worker's or the role's."""

    def __init__(self, status: Literal[429, 503], error: str):
        self.status, self.error = status, error
        super().__init__(error)


@dataclass(frozen=True)
class Holder:
    """Whose stream a slot is: the person (user id; "wall" for the wall screens) and how they count."""

    person: str
    role: UserRole
    wall: bool

    @property
    def privileged(self) -> bool:
        """The centre's duty officers and the wall screens may take the reserved slots."""
        return self.wall or self.role is UserRole.duty_officer


class Slots:
    """The board streams open on this worker, counted per person, per role and in all."""

    def __init__(self, limits: BoardStreams):
        self.limits = limits
        self.per_person: Counter[str] = Counter()
        self.per_role: Counter[UserRole] = Counter()
        self.walls = 0
        self.total = 0

    def take(self, holder: Holder) -> None:
        """Count one more stream for `holder`, or raise Refused saying which limit it met."""
        limits = self.limits
        if holder.wall:
            if self.walls >= limits.wall_screens:
                raise Refused(429, f"大屏看板连接已达上限（{limits.wall_screens} 个），请先关闭一块屏幕的看板 "
                                   f"(the wall screens have their {limits.wall_screens} board streams open: "
                                   "close one first)")
        else:
            if self.per_person[holder.person] >= limits.per_person:
                raise Refused(429, f"您已打开 {limits.per_person} 个看板，已达每人上限，请先关闭其他看板页面 "
                                   f"(you have {limits.per_person} board streams open, the most one person "
                                   "may: close another board first)")
            role_limit = getattr(limits.per_role, holder.role.value)
            if self.per_role[holder.role] >= role_limit:
                raise Refused(503, f"{ROLE_NAMES[holder.role]}的看板连接已满（{role_limit} 个），请稍后再试 "
                                   f"(the {role_limit} board streams of the {holder.role.value} role are all "
                                   "in use: try again shortly)")
        room = limits.total if holder.privileged else limits.total - limits.reserved
        if self.total >= room:
            raise Refused(503, "本服务器的看板连接已满，请稍后再试 (every board stream of this worker is in "
                               "use: try again shortly)")
        self.total += 1
        if holder.wall:
            self.walls += 1
        else:
            self.per_person[holder.person] += 1
            self.per_role[holder.role] += 1

    def give_back(self, holder: Holder) -> None:
        self.total -= 1
        if holder.wall:
            self.walls -= 1
            return
        self.per_person[holder.person] -= 1
        if not self.per_person[holder.person]:
            del self.per_person[holder.person]
        self.per_role[holder.role] -= 1


class Subscriber:
    """One open stream's place at the hub: the entries it may see, waiting to be written."""

    def __init__(self, may_see: Callable[[Ticket], bool], reads_all: bool, connected: Callable[[], bool]):
        self.may_see, self.reads_all, self.connected = may_see, reads_all, connected
        self.pending: deque[BoardEntry] = deque()
        self.wake = asyncio.Event()
        # Why the hub ended the stream: its client went away, or it fell too far behind.
        self.ended: Literal["gone", "behind"] | None = None

    def sees(self, entry: BoardEntry) -> bool:
        return self.reads_all or (entry.ticket is not None and self.may_see(entry.ticket))

    def offer(self, entry: BoardEntry) -> None:
        if self.ended:
            return
        if self.sees(entry):
            if len(self.pending) >= MAX_BACKLOG:
                self.end("behind")
                return
            self.pending.append(entry)
            self.wake.set()

    def end(self, why: Literal["gone", "behind"]) -> None:
        self.ended = why
        self.pending.clear()
        self.wake.set()


def release_memory() -> None:
    """Hand the heap's free pages back to the system. glibc keeps what a crowd of streams freed for the
    process's life (hundreds of boards that came and went left the worker 10% larger); malloc_trim
    returns it. Nothing to do where the C library has no malloc_trim."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


class BoardHub:
    """One reader of the board's Redis stream for every stream of this worker (per app: the Http
    object of one pipeline owns one). It runs while a stream is open and stops after the last."""

    def __init__(self, redis: Redis, key: str, limits: BoardStreams):
        self.redis, self.key = redis, key
        self.slots = Slots(limits)
        self.subscribers: set[Subscriber] = set()
        self._reader: asyncio.Task | None = None
        self._sweeper: asyncio.Task | None = None
        self._start: asyncio.Future[EntryId] | None = None
        self._opening = asyncio.Semaphore(OPENING_AT_ONCE)
        # The most streams open at once since memory was last released.
        self._peak = 0

    @contextlib.asynccontextmanager
    async def opening(self):
        """A turn to open a stream; Refused (503) after OPENING_WAIT_S in the queue."""
        try:
            async with asyncio.timeout(OPENING_WAIT_S):
                await self._opening.acquire()
        except TimeoutError:
            raise Refused(503, "看板连接正在排队打开，请稍后再试 (too many boards are opening at once: "
                               "try again shortly)") from None
        try:
            yield
        finally:
            self._opening.release()

    def join(self, subscriber: Subscriber) -> None:
        """From now on, every entry the reader reads is offered to `subscriber`."""
        self.subscribers.add(subscriber)
        self._peak = max(self._peak, len(self.subscribers))
        if self._reader is None or self._reader.done():
            self._start = asyncio.get_running_loop().create_future()
            self._reader = asyncio.create_task(self._read(self._start), name="board-hub-reader")
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="board-hub-sweeper")

    def leave(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    async def started(self) -> EntryId:
        """The entry the reader reads after. Everything up to it is in Redis already: a stream that
        joined, then reads Redis from its own position, misses nothing between the two."""
        assert self._start is not None
        return await asyncio.shield(self._start)

    async def _read(self, start: asyncio.Future[EntryId]) -> None:
        try:
            await self._read_on(start)
        except Exception as exc:
            log.exception("board reader failed: its streams end and their boards reconnect")
            if not start.done():
                start.set_exception(exc)
            for subscriber in self.subscribers:
                subscriber.end("behind")

    async def _read_on(self, start: asyncio.Future[EntryId]) -> None:
        try:
            newest = await self.redis.xrevrange(self.key, count=1)
        except (RedisError, OSError) as exc:
            start.set_exception(exc)
            return
        last = newest[0][0].decode() if newest else "0-0"
        start.set_result(EntryId.parse(last) or ZERO)
        delay = 0.1
        while self.subscribers:
            try:
                batches = await self.redis.xread({self.key: last}, count=READ_COUNT, block=int(READ_BLOCK_S * 1000))
            except (RedisError, OSError) as exc:
                # The streams stay open on keepalives; the reader goes on from where it was.
                log.warning("board reader cannot read Redis, retrying",
                            extra={"retry_in_s": delay, "error": type(exc).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            for raw_id, fields in batches[0][1] if batches else ():
                entry = board_entry(raw_id, fields)
                last = raw_id.decode()
                for subscriber in self.subscribers:
                    subscriber.offer(entry)

    async def _sweep(self) -> None:
        # aiohttp does not cancel a handler whose client went away: a stream would notice only at
        # its next write. Looking at every stream's connection a few times a second frees the slot
        # of a closed board at once.
        while self.subscribers:
            await asyncio.sleep(SWEEP_S)
            for subscriber in self.subscribers:
                if not subscriber.ended and not subscriber.connected():
                    subscriber.end("gone")
            self._release_after_a_crowd()
        self._release_after_a_crowd()

    def _release_after_a_crowd(self) -> None:
        if self._peak - len(self.subscribers) >= RELEASE_AFTER and len(self.subscribers) <= self._peak // 2:
            release_memory()
            self._peak = len(self.subscribers)
