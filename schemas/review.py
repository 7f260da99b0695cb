"""The written parts of a review (复盘): findings and the actions taken on them (整改措施), each with the
department that owns it and its due date, as the centre wrote them (stored in Redis, streams/review_store.py)."""
from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from handlers.privacy import mask_personal

Text = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(mask_personal)]
MAX_FINDINGS = 50


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
    finding: Text  # what the review found
    action: Text  # 整改措施: what is to change
    owner: Annotated[str, Field(min_length=1, max_length=64)]  # a department of district.yaml
    due: date
    done: bool = False


class Written(BaseModel):
    """One version of a review's written parts: who wrote it and when. Every version is kept."""

    model_config = ConfigDict(extra="allow", frozen=True)
    review_id: str
    version: int
    findings: list[Finding]
    at: AwareDatetime
    by: str
    user_id: str
