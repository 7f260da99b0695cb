"""Signing in and out of the pages, the users an admin manages, and the audit trail an admin reads.

A sign-in sets an HttpOnly, SameSite=Strict session cookie (Secure over https); a state-changing
request with that cookie carries the session's CSRF token in X-CSRF-Token (the pages read it from
the sign-in answer or GET /api/district). The sign-in and those requests come from this site only, as
JSON (Http.same_origin, Http.json_only). Failed sign-ins slow their address on that account
(handlers/sign_in.py), never lock it. Every sign-in, failed sign-in and sign-out goes to soc.audit.
"""
from __future__ import annotations

import math
from typing import Annotated

from faust import web
from pydantic import Field, StringConstraints

from handlers.permissions import Can
from handlers.sign_in import Throttle
from schemas.accounts import UserId, UserRole
from streams.accounts import SignIn
from streams.http.api import SESSION_COOKIE, ApiError, Body, JsonView, Principal, only_params, page_param, validate

# Byte for byte, as `soc users add --password-stdin` stores it: a space is part of a password.
Password = Annotated[str, StringConstraints(strip_whitespace=False), Field(min_length=1, max_length=256)]
MAX_AUDIT_PAGE = 500
# Longer than any user id, so that an account made before ids were matched whole can still be disabled.
MAX_PATH_ID = 100


class LoginBody(Body):
    user: Annotated[str, Field(min_length=1, max_length=64)]
    password: Password


class NewUserBody(Body):
    user_id: UserId
    name: Annotated[str, Field(min_length=1, max_length=60)]
    department: Annotated[str, Field(min_length=1, max_length=64)]
    role: UserRole
    password: Password


class ResetBody(Body):
    password: Password


class HoldBody(Body):
    department: Annotated[str, Field(min_length=1, max_length=64)]


def _secure(view: JsonView, request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto") == "https" \
        or view.http.settings.public_url.startswith("https://")


def _signed_in(who: Principal) -> dict:
    return {"user": who.actor.model_dump(mode="json"), "community": who.community, "csrf": who.csrf}


class Login(JsonView):
    async def post(self, request: web.Request) -> web.Response:
        http = self.http
        # Signing a victim in to the attacker's account is a forgery too: a form cannot send JSON.
        http.same_origin(request)
        http.json_only(request)
        body = validate(LoginBody, await http.read_json(request))
        metrics = http.pipeline.metrics
        wait = http.sign_in_limiter.allow(f"addr:{request.remote}")
        if wait:  # counted, not written to the trail: a flood would push real lines out of it
            metrics.sign_ins.labels(SignIn.throttled.value).inc()
            metrics.sign_in_throttled.labels(Throttle.address.value).inc()
            raise ApiError(429, "too many sign-ins from this address: wait a little", retry_after_s=round(wait, 1))
        result = await http.accounts.sign_in(body.user, body.password, request.remote or "")
        metrics.sign_ins.labels(result.outcome.value).inc()
        if result.outcome is SignIn.throttled:  # counted, not written to the trail, as above
            metrics.sign_in_throttled.labels(result.throttle.value).inc()
            seconds = max(1, math.ceil(result.retry_after_s))
            raise ApiError(429, f"too many failed sign-ins to this account from this address: try again in "
                                f"{seconds} s", retry_after_s=seconds)
        actor = result.user.actor() if result.user else None
        if result.outcome is not SignIn.ok:
            # A name that is no user's is not written down: people type their password there by mistake.
            http.audit(request, "sign_in_failed", "sign_in", actor=actor,
                       user_id=actor.user_id if actor else "(unknown)", outcome=result.outcome.value)
            if result.outcome is SignIn.disabled:
                raise ApiError(403, "this account is disabled: ask an administrator")
            raise ApiError(401, "wrong user name or password")
        who = Principal(actor, "session", http.config, result.csrf)
        http.audit(request, "sign_in", "sign_in", actor=who.actor)
        response = self.json(_signed_in(who))
        response.set_cookie(SESSION_COOKIE, result.session_id, httponly=True, samesite="Strict", path="/",
                            secure=_secure(self, request))
        return response


class Logout(JsonView):
    async def post(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        if who.credential != "session":
            raise ApiError(400, "only a page's session signs out; revoke a token with `soc users revoke`")
        await self.http.accounts.sign_out(request.cookies[SESSION_COOKIE])
        self.http.audit(request, "sign_out", "sign_out", who)
        response = self.json({"signed_out": True})
        response.del_cookie(SESSION_COOKIE, path="/")
        return response


class Users(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        (await self.http.authenticate(request)).require(Can.manage_users)
        return self.json({"users": [u.public() for u in await self.http.accounts.all()]})

    async def post(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.manage_users)
        body = validate(NewUserBody, await self.http.read_json(request))
        try:
            user = await self.http.accounts.add(body.user_id, body.name, body.department, body.role, body.password)
        except ValueError as exc:
            raise ApiError(409 if "exists" in str(exc) else 422, str(exc)) from None
        self.http.audit(request, "users", "users.add", who, target=user.user_id,
                        detail=f"{user.department} {user.role.value}")
        return self.json(user.public(), status=201)


USER_ACTIONS = ("disable", "enable", "reset", "token", "revoke", "hold", "release")


class UserAction(JsonView):
    async def post(self, request: web.Request, user_id: str, action: str) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.manage_users)
        if action not in USER_ACTIONS:
            raise ApiError(404, f"no action {action!r}; actions: {', '.join(USER_ACTIONS)}")
        accounts = self.http.accounts
        if len(user_id) > MAX_PATH_ID or await accounts.get(user_id) is None:
            raise ApiError(404, f"no user {user_id[:MAX_PATH_ID]}")
        if user_id == who.actor.user_id and action == "disable":
            raise ApiError(409, "you cannot disable your own account: another admin can")
        answer: dict
        detail = ""
        if action == "reset":
            body = validate(ResetBody, await self.http.read_json(request))
            try:
                answer = (await accounts.reset(user_id, body.password)).public()
            except ValueError as exc:
                raise ApiError(422, str(exc)) from None
        elif action == "token":
            # Over HTTP an admin mints tokens for their own account only: one for anybody else would let
            # the admin act in that person's name. `soc users token NAME` at the shell is for the rest.
            if user_id != who.actor.user_id:
                raise ApiError(403, "a token is issued to its owner: `soc users token NAME` on the server")
            answer = {"user_id": user_id, "token": await accounts.issue_token(user_id),
                      "note": "shown once: only its hash is kept"}
        elif action in ("hold", "release"):
            # Who holds which department's service credential: what it resolved, they do not verify.
            body = validate(HoldBody, await self.http.read_json(request))
            change = accounts.hold if action == "hold" else accounts.release
            try:
                answer = (await change(user_id, body.department)).public()
            except ValueError as exc:
                raise ApiError(422, str(exc)) from None
            detail = body.department
        elif action == "revoke":
            answer = {"user_id": user_id, "revoked": await accounts.revoke_tokens(user_id)}
        elif action == "disable":
            answer = (await accounts.disable(user_id)).public()
        else:
            answer = (await accounts.enable(user_id)).public()
        self.http.audit(request, "users", f"users.{action}", who, target=user_id, detail=detail)
        return self.json(answer)


class Audit(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        (await self.http.authenticate(request)).require(Can.read_audit)
        query = request.query
        only_params(query, {"limit", "offset", "user", "what"})
        limit = page_param(query, "limit", 100, MAX_AUDIT_PAGE, minimum=1)  # 0 would read the range 0..-1: all
        offset = page_param(query, "offset", 0, 100_000)
        records = await self.http.audit_log.page(offset, limit, query.get("user") or None, query.get("what") or None)
        return self.json({"limit": limit, "offset": offset, "records": [r.model_dump(mode="json") for r in records]})


ROUTES = [
    ("/api/login", "login", Login),
    ("/api/logout", "logout", Logout),
    ("/api/users", "users", Users),
    ("/api/users/{user_id}/{action}", "user-action", UserAction),
    ("/api/audit", "audit", Audit),
]
