"""Spot partitions the consumer stopped delivering: records waiting, none in flight, no progress.

Faust drops records it has already fetched when flow is suspended or the generation changes under
a fetch (faust/transport/consumer.py, getmany and _drain_messages). It seeks back to the committed
offsets after a rebalance, but records dropped around that seek stay unread until the next
rebalance or restart: the kill -9 test saw the last records of a partition wait over 90 s."""
from __future__ import annotations

from collections.abc import Hashable, Iterable


class StallDetector:
    def __init__(self, after_s: float):
        self.after_s = after_s
        self._since: dict[Hashable, tuple[int, float]] = {}
        self._total: int | None = None
        self._flat_since = 0.0

    def progress(self, total: int, now: float) -> None:
        """The consumer's overall position (the sum over its partitions), once per look. A busy
        worker leaves a backlogged partition unread for long stretches while it works on others:
        only a consumer that moved nowhere for `after_s` can have a partition stalled."""
        if total != self._total:
            self._total, self._flat_since = total, now

    def idle(self, now: float) -> bool:
        return now - self._flat_since >= self.after_s

    def stalled(self, tp: Hashable, next_offset: int, end: int | None, in_flight: bool, now: float) -> bool:
        """True once `tp` has had records from `next_offset` on and nothing in flight, with
        `next_offset` unchanged, for `after_s` seconds; the clock then starts again, so a partition
        is reported at most once per `after_s`."""
        waiting = end is not None and end > next_offset
        if not waiting or in_flight:
            self._since.pop(tp, None)
            return False
        mark = self._since.get(tp)
        if mark is None or mark[0] != next_offset:
            self._since[tp] = (next_offset, now)
            return False
        if now - mark[1] < self.after_s:
            return False
        del self._since[tp]
        return True

    def keep_only(self, assigned: Iterable[Hashable]) -> None:
        keep = set(assigned)
        for tp in [tp for tp in self._since if tp not in keep]:
            del self._since[tp]
