"""Photo evidence on a ticket (处置前后照片): what the ticket's history records of an upload."""
from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field, field_validator

from schemas.enums import Category
from schemas.strict import WIRE, Strict


class EvidenceStage(str, Enum):
    """When the photo was taken: before the work (处置前), after it (处置后), or anything else."""

    before = "before"
    after = "after"
    other = "other"


class MediaType(str, Enum):
    jpeg = "image/jpeg"
    png = "image/png"


class Photo(BaseModel):
    """One uploaded image, by the SHA-256 of the bytes the server re-encoded (the same picture uploaded twice
    is one image), with the GPS position its EXIF carried (the rest of the EXIF is dropped)."""

    model_config = WIRE
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    stage: EvidenceStage
    media_type: MediaType
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    bytes: int = Field(gt=0)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)


class EvidenceRules(Strict):
    """routing.yaml `evidence`: the categories whose tickets need a photo after the work (处置后照片) to be
    resolved, uploaded since the ticket was last accepted."""

    after_photo_to_resolve: list[Category] = []

    @field_validator("after_photo_to_resolve")
    @classmethod
    def _once(cls, categories: list[Category]) -> list[Category]:
        doubled = sorted({c.value for c in categories if categories.count(c) > 1})
        if doubled:
            raise ValueError(f"categories listed more than once: {', '.join(doubled)}")
        return categories
