"""Three hundred board streams from people of every role while tickets keep coming, on a worker whose
district.yaml leaves room for exactly those 300 plus the reserved slots: the duty officer and the wall
screen still get their boards, nobody gets a 500, every stream gets the new tickets it may see and
none it may not, a person's ninth stream is refused, a hundred listings at once beside them all
succeed, and the worker's memory comes back after."""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
import psutil
import pytest

from schemas.accounts import Actor, UserRole
from streams.accounts import service_actor
from streams.http.api import Principal
from streams.settings import REPO_ROOT
from tests.integration.payloads import Builder
from tests.support import Pipeline, poll, running_pipeline

pytestmark = pytest.mark.integration

RESERVED = 10
CROWD = 300
# Who holds the 300 streams: (department, role, people); each person opens per_person streams, each
# service token SERVICE_STREAMS.
PEOPLE = [("traffic_police", UserRole.clerk, 8), ("city_management", UserRole.clerk, 8),
          ("ws_liyuan", UserRole.clerk, 7), ("ws_wanghai", UserRole.clerk, 6),
          ("traffic_police", UserRole.supervisor, 2), ("city_management", UserRole.supervisor, 2),
          ("district_leadership", UserRole.leader, 2)]
SERVICES = ["traffic_police", "city_management", "ws_liyuan", "ws_wanghai", "environment"]
SERVICE_STREAMS = 4


@pytest.fixture(scope="module")
def crowded(tmp_path_factory) -> Iterator[Pipeline]:
    """A worker whose non-reserved board slots are exactly CROWD."""
    config_dir = tmp_path_factory.mktemp("crowd") / "config"
    shutil.copytree(REPO_ROOT / "deploy" / "config", config_dir)
    district = config_dir / "district.yaml"
    text = district.read_text(encoding="utf-8")
    text, totals = re.subn(r"^  total: \d+", f"  total: {CROWD + RESERVED}", text, flags=re.M)
    text, reserves = re.subn(r"^  reserved: \d+", f"  reserved: {RESERVED}", text, flags=re.M)
    assert totals == reserves == 1
    district.write_text(text, encoding="utf-8")
    with running_pipeline(tmp_path_factory.mktemp("crowd-logs"), config_dir) as running:
        yield running


@dataclass
class Board:
    """One open stream, as the test client reads it."""

    principal: Principal
    status: int = 0
    refusal: dict = field(default_factory=dict)
    retry_after: str | None = None
    snapshot: set[str] = field(default_factory=set)
    events: set[str] = field(default_factory=set)
    response: aiohttp.ClientResponse | None = None
    reader: asyncio.Task | None = None

    @property
    def seen(self) -> set[str]:
        return self.snapshot | self.events


async def open_board(session: aiohttp.ClientSession, url: str, token: str, principal: Principal) -> Board:
    board = Board(principal)
    response = await session.get(f"{url}/api/alerts/stream", params={"token": token},
                                 timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None))
    board.status = response.status
    if response.status != 200:
        board.retry_after = response.headers.get("Retry-After")
        board.refusal = await response.json(content_type=None)
        response.release()
        return board
    board.response = response
    got_snapshot = asyncio.Event()
    board.reader = asyncio.create_task(read_events(board, got_snapshot))
    await asyncio.wait_for(got_snapshot.wait(), 120)
    return board


async def read_events(board: Board, got_snapshot: asyncio.Event) -> None:
    event, data = None, []
    try:
        async for raw in board.response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif not line and data:
                payload = json.loads("\n".join(data))
                if event == "snapshot":
                    board.snapshot.update(t["ticket_id"] for t in payload)
                    got_snapshot.set()
                elif event == "ticket":
                    board.events.add(payload["ticket"]["ticket_id"])
                event, data = None, []
    except (aiohttp.ClientError, asyncio.CancelledError):
        pass


async def until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


def close(boards: list[Board]) -> None:
    for board in boards:
        if board.reader:
            board.reader.cancel()
        if board.response:
            board.response.close()


def worker_rss(pipeline: Pipeline) -> int:
    process = psutil.Process(pipeline.worker.process.popen.pid)
    return sum(p.memory_info().rss for p in (process, *process.children(recursive=True)))


class Traffic:
    """Accidents in 望海 and 12345 cases in 荔园, one a second on a thread of their own while the test goes on;
    each half an hour or a day (their dedup windows) after the last, so that each is a ticket."""

    def __init__(self, pipeline: Pipeline, build: Builder):
        self.pipeline, self.build = pipeline, build
        self.sent = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def send_one(self) -> None:
        with self.lock:
            self.sent += 1
            if self.sent % 2:
                self.pipeline.send("soc.raw.traffic", self.build.traffic(observed_at=self.build.at(31 * self.sent)))
            else:
                self.pipeline.send("soc.raw.city", self.build.city(reported_at=self.build.at(1441 * self.sent)))

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            self.send_one()

    def tickets(self) -> dict:
        """Every ticket of the stack (its Redis is this module's alone)."""
        return {t.ticket_id: t for t in self.pipeline.tickets_where(lambda t: True)}


async def listing(session: aiohttp.ClientSession, url: str, token: str) -> int:
    async with session.get(f"{url}/api/tickets?limit=10", headers={"Authorization": f"Bearer {token}"}) as response:
        await response.read()
        return response.status


async def p95_of_listing(session: aiohttp.ClientSession, url: str, token: str, samples: int = 60) -> float:
    """Seconds, for GET /api/tickets by a user who holds no stream (paced inside its request budget)."""
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        assert await listing(session, url, token) == 200
        times.append(time.perf_counter() - started)
        await asyncio.sleep(0.15)
    return statistics.quantiles(times, n=20)[-1]


def test_three_hundred_boards_leave_the_duty_officer_and_the_wall_their_boards(crowded, unique):
    pipeline, config = crowded, crowded.config
    limits = config.district.board_streams
    build = Builder(config, unique)
    holders: list[tuple[str, Principal, int]] = []
    for department, role, count in PEOPLE:
        for n in range(count):
            user = pipeline.add_user(f"{role.value[:5]}-{department[:8]}-{n}-{unique}"[:32].replace("_", "-"),
                                     department, role)
            actor = Actor(user_id=user, name=user, department=department, role=role)
            holders.append((pipeline.user_token(user), Principal(actor, "token", config), limits.per_person))
    for department in SERVICES:
        holders.append((pipeline.tokens[department], Principal(service_actor(config, department), "service", config),
                        SERVICE_STREAMS))
    assert sum(streams for *_, streams in holders) == CROWD
    duty = pipeline.add_user(f"duty-{unique}", "ops_centre", UserRole.duty_officer)
    latecomer = pipeline.add_user(f"late-{unique}", "traffic_police", UserRole.clerk)
    bystander = pipeline.add_user(f"by-{unique}", "environment", UserRole.clerk)
    wall = Principal(Actor(user_id="wall", name="wall", department="ops_centre", role=UserRole.service), "wall", config)
    traffic = Traffic(pipeline, build)
    url = pipeline.worker.url

    async def scenario() -> dict:
        figures = {}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            bystander_token = pipeline.user_token(bystander)
            # Warm, with the tickets flowing: the code paths the streams take are loaded and the
            # pipeline has found its stride before memory and latency are measured.
            traffic.thread.start()
            warm = Principal(service_actor(config, "traffic_police"), "service", config)
            close(await asyncio.gather(*(open_board(session, url, pipeline.tokens["traffic_police"], warm)
                                         for _ in range(SERVICE_STREAMS))))
            await until(lambda: len(traffic.tickets()) >= 10, 60, "the first tickets")
            # The burst of listings below, once before: what it leaves allocated is not the streams'.
            await asyncio.gather(*(listing(session, url, token) for token, *_ in holders[:10] for _ in range(10)))
            figures["idle_p95_s"] = await p95_of_listing(session, url, bystander_token)
            figures["rss_before"] = worker_rss(pipeline)
            boards: list[Board] = []
            try:
                # All at once: 200 at once once gave 39 answers of 500.
                boards = await asyncio.gather(*(open_board(session, url, token, principal)
                                                for token, principal, streams in holders for _ in range(streams)))
                assert sorted({b.status for b in boards}) == [200], [(b.status, b.refusal) for b in boards if b.status != 200]

                ninth = await open_board(session, url, holders[0][0], holders[0][1])
                assert (ninth.status, ninth.retry_after) == (429, "10"), ninth
                assert ninth.refusal["error"].startswith(f"您已打开 {limits.per_person} 个看板"), ninth.refusal
                late_actor = Actor(user_id=latecomer, name=latecomer, department="traffic_police", role=UserRole.clerk)
                late = await open_board(session, url, pipeline.user_token(latecomer),
                                        Principal(late_actor, "token", config))
                assert (late.status, late.retry_after) == (503, "10"), late
                assert late.refusal["error"].startswith("本服务器的看板连接已满"), late.refusal

                duty_actor = Actor(user_id=duty, name=duty, department="ops_centre", role=UserRole.duty_officer)
                privileged = [await open_board(session, url, pipeline.user_token(duty),
                                               Principal(duty_actor, "token", config)),
                              await open_board(session, url, pipeline.wall_token, wall)]
                assert [b.status for b in privileged] == [200, 200], [b.refusal for b in privileged]
                boards += privileged

                figures["loaded_p95_s"] = await p95_of_listing(session, url, bystander_token)
                # 40 streams once left 24 Redis connections for the API: 76 of 100 listings at once got 503.
                listings = await asyncio.gather(*(listing(session, url, token) for token, *_ in holders[:10]
                                                  for _ in range(10)))
                assert listings == [200] * 100, sorted(set(listings))
                figures["rss_open"] = worker_rss(pipeline)

                # Tickets sent now reach every open stream as events, not in a snapshot.
                traffic.stop.set()
                traffic.thread.join()
                await until(lambda: len(traffic.tickets()) >= traffic.sent, 60, "a ticket for each event sent")
                before = set(traffic.tickets())
                for _ in range(4):
                    traffic.send_one()
                await until(lambda: len(traffic.tickets()) >= traffic.sent, 60, "the last four tickets")
                sent = traffic.tickets()
                live = set(sent) - before
                visible = {id(b): {t for t, ticket in sent.items() if b.principal.can_see(ticket)} for b in boards}
                await until(lambda: all(visible[id(b)] <= b.seen and visible[id(b)] & live <= b.events
                                        for b in boards), 120, "every stream to get the tickets it may see")
                for board in boards:
                    assert board.seen <= visible[id(board)], board.principal.department
                # The new tickets reached the boards of the departments they concern, and no others.
                reached = sum(bool(b.events & live) for b in boards)
                assert 0 < reached < len(boards) and reached == sum(bool(visible[id(b)] & live) for b in boards)
            finally:
                traffic.stop.set()
                close(boards)

            # The slots are free again: the latecomer gets a board now.
            async def latecomer_board() -> Board:
                board = await open_board(session, url, pipeline.user_token(latecomer), late.principal)
                close([board])
                return board
            deadline = time.monotonic() + 10
            while (await latecomer_board()).status != 200:
                assert time.monotonic() < deadline, "the closed streams' slots to come free"
                await asyncio.sleep(0.2)
        return figures

    figures = asyncio.run(scenario())
    after = poll(lambda: (rss := worker_rss(pipeline)) <= figures["rss_before"] * 1.10 and rss, 90,
                 f"the worker's memory back within 10% of {figures['rss_before']} bytes")
    # The figure, measured here and reported (no timing assertion: see bench/).
    print(f"\nboard crowd: GET /api/tickets p95 idle {figures['idle_p95_s'] * 1000:.1f} ms, with {CROWD + 2} "
          f"streams {figures['loaded_p95_s'] * 1000:.1f} ms; RSS before {figures['rss_before'] / 2**20:.1f} MiB, "
          f"open {figures['rss_open'] / 2**20:.1f} MiB, after {after / 2**20:.1f} MiB")
