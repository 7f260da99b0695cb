"""The mirrored silences, inhibitors and response level (streams/topology/mirror.py) seen as models, parsed
once per change."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from schemas.response import ResponseChange

M = TypeVar("M", bound=BaseModel)


class ModelBook(Generic[M]):
    """Read-only view over a mirror whose values are JSON objects of one model (None once deleted)."""

    def __init__(self, table: Mapping[str, Any], model: type[M]):
        self._table, self._model = table, model
        self._parsed: dict[str, tuple[Any, M]] = {}

    def get(self, key: str) -> M | None:
        raw = self._table.get(key)
        if raw is None:
            return None
        cached = self._parsed.get(key)
        if cached is None or cached[0] != raw:
            cached = (raw, self._model.model_validate(raw))
            self._parsed[key] = cached
        return cached[1]

    def all(self) -> tuple[M, ...]:
        """Every value, in key order (the same on every worker)."""
        found = ((key, self.get(key)) for key in sorted(self._table.keys()))
        return tuple(value for _, value in found if value is not None)


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
