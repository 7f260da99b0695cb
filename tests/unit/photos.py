"""Photos as the ticket step records them (a stored image's name and what was read from it), for the unit
tests that resolve a ticket of a category routing.yaml resolves only with a photo after the work."""
from __future__ import annotations

from schemas.evidence import EvidenceStage, MediaType, Photo


def picture(stage: EvidenceStage, n: int = 1) -> Photo:
    return Photo(sha256=f"{n:064x}", stage=stage, media_type=MediaType.jpeg, width=4000, height=3000, bytes=1_500_000,
                 lat=22.51, lon=113.905)


AFTER = picture(EvidenceStage.after)
