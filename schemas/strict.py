"""The base of every config model: unknown keys are errors, loaded values never change."""
from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Records the workers send each other (topics, tables): a field this version does not know is kept, not
# refused, and written out again. During a rolling update an older worker reads what a newer one wrote
# without dead-lettering it, and passes the new fields on unchanged.
WIRE = ConfigDict(extra="allow")
WIRE_FROZEN = ConfigDict(extra="allow", frozen=True)


def unique_names(items: list, what: str) -> list:
    """A config list whose entries' `name`s must differ (a validator's body)."""
    names = [item.name for item in items]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ValueError(f"{what} names must be unique: {', '.join(doubled)}")
    return items
