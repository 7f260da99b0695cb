"""The whitelist (the soc.sites mirror) seen as SiteRegistration models, parsed once per change."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from schemas.raw import SiteRegistration
from streams.topology.silences import ModelBook


def registration(raw: Any) -> SiteRegistration | None:
    """A soc.sites value, or None when it is not a valid registration (check_sites dead-letters it)."""
    try:
        return SiteRegistration.model_validate(raw)
    except ValidationError:
        return None


class Whitelist(Mapping[str, SiteRegistration]):
    """The soc.sites mirror as a mapping of valid registrations: an invalid value counts as absent."""

    def __init__(self, table: Mapping[str, Any]):
        self._book = ModelBook(table, registration)

    def __getitem__(self, site_id: str) -> SiteRegistration:
        site = self._book.get(site_id)
        if site is None:
            raise KeyError(site_id)
        return site

    def __iter__(self) -> Iterator[str]:
        return iter(self._book.by_key())

    def __len__(self) -> int:
        return len(self._book.by_key())
