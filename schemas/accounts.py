"""People who sign in, what their roles let them do, and the audit record of what they did."""
from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from schemas.strict import WIRE


class UserRole(str, Enum):
    clerk = "clerk"                # works the department's tickets
    supervisor = "supervisor"      # a clerk who also decides the department's extensions (district.yaml)
    duty_officer = "duty_officer"  # the operations centre: verify, redispatch, silences, the response level
    leader = "leader"              # the leadership: reads everything, sets the response level
    admin = "admin"                # manages users, reads the audit trail
    service = "service"            # a department's machine credential (feeds, scripts), not a person


USER_ID = re.compile(r"[a-z][a-z0-9_.-]{1,31}")
UserId = Annotated[str, StringConstraints(pattern=USER_ID.pattern)]


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
    user_id: UserId
    name: Annotated[str, Field(min_length=1, max_length=60)]
    department: str
    role: UserRole
    disabled: bool = False
    password_hash: str
    created_at: AwareDatetime
    password_changed_at: AwareDatetime

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
