"""The whitelist (the soc.sites mirror) seen as SiteRegistration models, parsed once per change."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from schemas.raw import SiteRegistration


class Whitelist(Mapping[str, SiteRegistration]):
    """Read-only view over the soc.sites mirror (site_id -> the registration as a JSON object). A value
    that is not a valid registration counts as absent: register_sites dead-letters it."""

    def __init__(self, table: Mapping[str, Any]):
        self._table = table
        self._parsed: dict[str, tuple[Any, SiteRegistration | None]] = {}

    def __getitem__(self, site_id: str) -> SiteRegistration:
        raw = self._table[site_id]
        cached = self._parsed.get(site_id)
        if cached is None or cached[0] != raw:
            try:
                cached = (raw, SiteRegistration.model_validate(raw))
            except ValidationError:
                cached = (raw, None)
            self._parsed[site_id] = cached
        if cached[1] is None:
            raise KeyError(site_id)
        return cached[1]

    def __iter__(self) -> Iterator[str]:
        return (k for k in list(self._table) if k in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)
