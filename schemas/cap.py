"""CAP 1.2 alerts (OASIS; China's profile GB/T 35965.1) as the pipeline reads them, and what it keeps of
each on soc.cap (compacted, keyed by "<sender>,<identifier>", read whole by every worker)."""
from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.enums import Severity

NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
Kind = Literal["typhoon", "rainstorm"]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapCircle(Frozen):
    lat: float
    lon: float
    radius_km: float


class CapArea(Frozen):
    description: str
    # Each polygon as CAP writes it: (lat, lon) pairs, the first repeated at the end.
    polygons: list[list[tuple[float, float]]] = []
    circles: list[CapCircle] = []
    # Administrative division codes (GB/T 2260 and its street-level extension), as China's profile sends them.
    geocodes: list[str] = []


class CapInfo(Frozen):
    language: str = "en-US"
    categories: list[str]
    event: str
    urgency: str
    severity: str
    certainty: str
    event_codes: dict[str, str] = {}
    effective: AwareDatetime | None = None
    onset: AwareDatetime | None = None
    expires: AwareDatetime | None = None
    sender_name: str = ""
    headline: str = ""
    description: str = ""
    parameters: dict[str, str] = {}
    areas: list[CapArea] = []


class CapAlert(Frozen):
    identifier: str
    sender: str
    sent: AwareDatetime
    status: str
    msg_type: str
    scope: str
    # "<sender>,<identifier>" of each alert referenced (CAP writes sender,identifier,sent triples).
    references: list[str] = []
    info: list[CapInfo] = []

    @property
    def key(self) -> str:
        return f"{self.sender},{self.identifier}"


class CapRecord(Frozen):
    """One alert received, as soc.cap keeps it. `chain` is the key of the first alert of an Alert ->
    Update -> Cancel chain: its signal is one flood station (`station_id`), so an Update changes the
    same signal and a Cancel lowers it."""

    key: str
    identifier: str
    sender: str
    sent: AwareDatetime
    status: str
    msg_type: str
    feed: str
    received_at: AwareDatetime
    chain: str
    kind: Kind | None = None
    severity: Severity | None = None
    expires: AwareDatetime | None = None
    station_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    communities: list[str] = []
    headline: str = ""
    supersedes: list[str] = []
    superseded_by: str | None = None
    # When the signal was lowered because the alert expired (the lowering reading's time).
    # An alert already expired when received is recorded lowered at its expiry: it never raised anything.
    lowered_at: AwareDatetime | None = None
    # When its signal took over, if not at `sent`: a second after the message it updates or cancels, when
    # sent in the same second (a station's reading is its time, so it would read as a replay of that one's).
    reads_from: AwareDatetime | None = None

    @property
    def live(self) -> bool:
        """An Actual alert whose signal is up: not cancelled, not superseded, not yet lowered."""
        return (self.status == "Actual" and self.kind is not None and self.msg_type != "Cancel"
                and self.superseded_by is None and self.lowered_at is None)
