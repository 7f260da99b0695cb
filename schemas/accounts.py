"""People who sign in, what their roles let them do, and the audit record of what they did."""
from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from schemas.strict import WIRE


class UserRole(str, Enum):
    clerk = "clerk"                # works the department's tickets
    supervisor = "supervisor"      # a clerk who also decides the department's extensions (district.yaml)
    duty_officer = "duty_officer"  # the operations centre: verify, redispatch, silences, the response level
    leader = "leader"              # the leadership: reads everything, sets the response level
    admin = "admin"                # manages users, reads the audit trail
    service = "service"            # a department's machine credential (feeds, scripts), not a person


# Matched whole (fullmatch): a name that merely contains such a run ("Bad Name", "x:session:abc") is none.
USER_ID = re.compile(r"[a-z][a-z0-9_.-]{1,31}")
USER_ID_RULE = ("a user id is 2 to 32 characters: a lowercase letter, then lowercase letters (a-z), digits, "
                "'.', '_' or '-'")


def _user_id(value: str) -> str:
    if not USER_ID.fullmatch(value):
        raise PydanticCustomError("user_id", USER_ID_RULE)
    return value


# A new user's id, over HTTP and at the shell alike (streams/accounts.py AccountStore.add says the same).
UserId = Annotated[str, StringConstraints(strip_whitespace=False), AfterValidator(_user_id)]


class Actor(BaseModel):
    """Who did something, as the sign-in established it (never as a request body claims it)."""

    model_config = WIRE
    user_id: str   # the sign-in name, or "service:<department>" for a department's machine credential
    name: str      # the display name the history shows
    department: str
    role: UserRole


class User(BaseModel):
    """A stored account. The password only as its argon2id hash; API tokens only as their SHA-256."""

    model_config = ConfigDict(extra="forbid")
    # Not UserId: an account made before ids were matched whole must still load, to be disabled.
    user_id: str
    name: Annotated[str, Field(min_length=1, max_length=60)]
    department: str
    role: UserRole
    disabled: bool = False
    password_hash: str
    created_at: AwareDatetime
    password_changed_at: AwareDatetime
    # The departments whose service credential (SOC_TOKEN_<DEPT>) this person holds, as an admin recorded
    # it: what that credential resolved, they do not verify.
    holds: list[str] = []

    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, name=self.name, department=self.department, role=self.role)

    def public(self) -> dict:
        return self.model_dump(mode="json", exclude={"password_hash"})


AuditKind = Literal["action", "sign_in", "sign_in_failed", "sign_out", "users"]


class AuditRecord(BaseModel):
    """One line of the audit trail (soc.audit): who, what, on what, with which result; never a secret."""

    model_config = WIRE
    audit_id: str
    at: AwareDatetime
    kind: AuditKind
    actor: Actor | None = None  # None: a sign-in that named no known user
    user_id: str = ""           # the name a sign-in gave (also for an unknown user), else the actor's
    what: str                   # e.g. "ticket.verify", "silence.create", "users.add"
    target: str = ""            # the ticket, silence or user acted on
    outcome: str = "ok"         # ok, refused, queued, failed, locked
    detail: str = ""            # why it was refused; a note, masked
    remote: str = ""            # the client address
