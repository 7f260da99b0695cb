"""The base of every config model: unknown keys are errors, loaded values never change."""
from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Records the workers send each other (topics, tables): a field this version does not know is kept, not
# refused, and written out again. During a rolling update an older worker reads what a newer one wrote
# without dead-lettering it, and passes the new fields on unchanged.
WIRE = ConfigDict(extra="allow")
WIRE_FROZEN = ConfigDict(extra="allow", frozen=True)
