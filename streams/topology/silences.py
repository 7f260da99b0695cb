"""The mirrored silences and response level (streams/topology/mirror.py) seen as models, parsed once per change."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.response import ResponseChange
from schemas.silences import Silence


class SilenceBook:
    """Read-only view over the soc.silences mirror (silence_id -> the silence as a JSON object)."""

    def __init__(self, table: Mapping[str, Any]):
        self._table = table
        self._parsed: dict[str, tuple[Any, Silence]] = {}

    def get(self, silence_id: str) -> Silence | None:
        raw = self._table.get(silence_id)
        if raw is None:
            return None
        cached = self._parsed.get(silence_id)
        if cached is None or cached[0] != raw:
            cached = (raw, Silence.model_validate(raw))
            self._parsed[silence_id] = cached
        return cached[1]

    def all(self) -> tuple[Silence, ...]:
        found = (self.get(silence_id) for silence_id in list(self._table.keys()))
        return tuple(sorted((s for s in found if s is not None), key=lambda s: s.silence_id))


class ResponseBook:
    """Read-only view over the soc.response mirror: each trigger's history of changes (JSON lists)."""

    def __init__(self, table: Mapping[str, Any]):
        self._table = table
        self._parsed: dict[str, tuple[Any, list[ResponseChange]]] = {}

    def histories(self) -> dict[str, list[ResponseChange]]:
        found = {}
        for key, raw in list(self._table.items()):
            if raw is None:
                continue
            cached = self._parsed.get(key)
            if cached is None or cached[0] != raw:
                cached = (raw, [ResponseChange.model_validate(c) for c in raw])
                self._parsed[key] = cached
            found[key] = cached[1]
        return found
