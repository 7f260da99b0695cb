"""The soak's clerk: closes tickets through the worker's HTTP API as departments and the operations
centre would, so the soak measures a pipeline whose tickets also end."""
from __future__ import annotations

import asyncio
import time
from io import BytesIO

import aiohttp
from PIL import Image

from bench.board import BoardReader
from bench.workload import district_config

VERIFIER = "duty officer"


def after_jpeg() -> bytes:
    """The clerk's photo after the work, uploaded where routing.yaml asks for one."""
    out = BytesIO()
    Image.new("RGB", (64, 48), (90, 140, 60)).save(out, "JPEG")
    return out.getvalue()


class Clerk:
    """Closes tickets through the worker's HTTP API as a department's clerk and the operations centre
    would: accept and resolve with the owning department's token, verify (passed) as a duty officer
    with a personal token (tokens[VERIFIER]). A ticket of a category routing.yaml resolves only with a photo
    after the work gets one uploaded before its resolve, as its crew would. Starts on `rate` tickets a second, the oldest opened first, at most 8 at a
    time. An action answered 202 (queued: the worker had not applied it within its wait) is
    followed by reading the ticket until it has the new status; a 409 (the ticket moved on: another
    action, an escalation) gives that ticket up; a 429 waits as told."""

    STEPS = (("accept", None, {"note": "bench soak"}, "accepted"),
             ("resolve", None, {"resolution": "handled (bench soak)"}, "resolved"),
             ("verify", VERIFIER, {"passed": True}, "closed"))

    def __init__(self, base_url: str, tokens: dict[str, str], reader: BoardReader, rate: float):
        self.base_url, self.tokens, self.reader, self.rate = base_url, tokens, reader, rate
        self.photo_categories: set[str] = set()
        self.after_jpeg = b""
        self.stats = {"started": 0, "closed": 0, "conflicts": 0, "timeouts": 0, "errors": 0, "requests": 0,
                      "queued_202": 0, "throttled_429": 0, "unfinished_at_stop": 0}
        self.samples: list[str] = []  # the first few conflicts and errors, as the API answered them
        self.close_s: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self.rate > 0 and "ops_centre" in self.tokens:
            self.photo_categories = {c.value for c in district_config().routing.evidence.after_photo_to_resolve}
            self.after_jpeg = after_jpeg()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task:
            task, self._task = self._task, None
            await task

    def report(self) -> dict:
        if self.rate > 0 and "ops_centre" not in self.tokens:
            return {"rate_per_s": self.rate, "skipped": "no department tokens (district.yaml unreadable)"}
        out = {"rate_per_s": self.rate, **self.stats, "samples": self.samples[:10]}
        if self.close_s:
            ordered = sorted(self.close_s)
            out["close_s_p50"] = round(ordered[len(ordered) // 2], 2)
            out["close_s_max"] = round(ordered[-1], 2)
        return out

    async def _run(self) -> None:
        pending: set[asyncio.Task] = set()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            next_at = time.monotonic()
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), max(0.0, next_at - time.monotonic()))
                    break
                except asyncio.TimeoutError:
                    pass
                next_at += 1.0 / self.rate
                if len(pending) >= 8:
                    continue
                while self.reader.opened:
                    ticket_id, department, category = self.reader.opened.popleft()
                    if department in self.tokens:
                        break
                else:
                    continue
                self.stats["started"] += 1
                task = asyncio.get_running_loop().create_task(self._close(http, ticket_id, department, category))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.wait(pending, timeout=30)
                for task in pending:
                    task.cancel()

    def _note(self, what: str) -> None:
        if len(self.samples) < 10:
            self.samples.append(what[:300])

    async def _request(self, http, method: str, path: str, department: str, body: dict | None = None):
        headers = {"Authorization": f"Bearer {self.tokens[department]}"}
        while True:
            self.stats["requests"] += 1
            async with http.request(method, self.base_url + path, json=body, headers=headers) as response:
                payload = await response.json(content_type=None)
                if response.status != 429:
                    return response.status, payload
                self.stats["throttled_429"] += 1
                await asyncio.sleep(float((payload or {}).get("retry_after_s") or 1.0))

    async def _upload_after_photo(self, http, ticket_id: str, department: str):
        form = aiohttp.FormData()
        form.add_field("stage", "after")
        form.add_field("image", self.after_jpeg, filename="after.jpg", content_type="image/jpeg")
        self.stats["requests"] += 1
        async with http.post(f"{self.base_url}/api/tickets/{ticket_id}/evidence", data=form,
                             headers={"Authorization": f"Bearer {self.tokens[department]}"}) as response:
            return response.status, await response.json(content_type=None)

    async def _close(self, http, ticket_id: str, department: str, category: str | None) -> None:
        t0 = time.monotonic()
        try:
            for action, who, body, want in self.STEPS:
                who = who or department
                if action == "resolve" and category in self.photo_categories:
                    # 201, or 202: queued on the ticket's key before the resolve, so applied first all the same.
                    status, payload = await self._upload_after_photo(http, ticket_id, who)
                    if status not in (201, 202):
                        self.stats["errors"] += 1
                        self._note(f"evidence {ticket_id}: {status} {str(payload)[:200]}")
                        return
                status, payload = await self._request(http, "POST", f"/api/tickets/{ticket_id}/{action}", who, body)
                if status == 202:
                    self.stats["queued_202"] += 1
                    applied = await self._wait_status(http, ticket_id, who, want)
                    if not applied:
                        self.stats["unfinished_at_stop" if applied is None else "timeouts"] += 1
                        return
                elif status == 409:
                    self.stats["conflicts"] += 1
                    self._note(f"{action} {ticket_id}: 409 {(payload or {}).get('error')}")
                    return
                elif status != 200:
                    self.stats["errors"] += 1
                    self._note(f"{action} {ticket_id}: {status} {str(payload)[:200]}")
                    return
            self.stats["closed"] += 1
            self.close_s.append(time.monotonic() - t0)
        except Exception as exc:
            self.stats["errors"] += 1
            self._note(f"{ticket_id}: {type(exc).__name__}: {exc}")

    async def _wait_status(self, http, ticket_id: str, department: str, want: str,
                           timeout: float = 60.0) -> bool | None:
        """True once the ticket has status `want`; False after `timeout`; None if the soak ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._stop.is_set():
                return None
            await asyncio.sleep(0.5)
            status, payload = await self._request(http, "GET", f"/api/tickets/{ticket_id}", department)
            if status == 200 and (payload or {}).get("status") == want:
                return True
        return False
