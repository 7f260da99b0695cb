"""The whitelist table seen as SiteRegistration models, parsed once per change."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from schemas.raw import SiteRegistration


class Whitelist(Mapping[str, SiteRegistration]):
    """Read-only view over the site_id_to_registration table (values are plain dicts)."""

    def __init__(self, table: Mapping[str, Any]):
        self._table = table
        self._parsed: dict[str, tuple[Any, SiteRegistration]] = {}

    def __getitem__(self, site_id: str) -> SiteRegistration:
        raw = self._table[site_id]
        if raw is None:
            raise KeyError(site_id)
        cached = self._parsed.get(site_id)
        if cached is None or cached[0] != raw:
            cached = (raw, SiteRegistration.model_validate(raw))
            self._parsed[site_id] = cached
        return cached[1]

    def __iter__(self) -> Iterator[str]:
        return (k for k, v in list(self._table.items()) if v is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)
