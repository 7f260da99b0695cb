"""The mirrored topics (streams/topology/mirror.py) seen as models, each value parsed once per change."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from schemas.response import ResponseChange

V = TypeVar("V")


class ModelBook(Generic[V]):
    """Read-only view over a mirror (key -> decoded JSON, absent once deleted): `parse` turns a value into
    its model; a value it turns into None counts as absent."""

    def __init__(self, table: Mapping[str, Any], parse: Callable[[Any], V | None]):
        self._table, self._parse = table, parse
        self._parsed: dict[str, tuple[Any, V | None]] = {}

    def get(self, key: str) -> V | None:
        raw = self._table.get(key)
        if raw is None:
            return None
        cached = self._parsed.get(key)
        if cached is None or cached[0] != raw:
            cached = (raw, self._parse(raw))
            self._parsed[key] = cached
        return cached[1]

    def by_key(self) -> dict[str, V]:
        """Every value, in key order (the same on every worker)."""
        found = ((key, self.get(key)) for key in sorted(self._table.keys()))
        return {key: value for key, value in found if value is not None}

    def all(self) -> tuple[V, ...]:
        return tuple(self.by_key().values())


def history(raw: list) -> list[ResponseChange]:
    """A soc.response value: one trigger's changes."""
    return [ResponseChange.model_validate(change) for change in raw]
