"""Signing in and out of the pages, the users an admin manages, and the audit trail an admin reads.

A sign-in sets an HttpOnly, SameSite=Strict session cookie (Secure over https); a state-changing
request with that cookie carries the session's CSRF token in X-CSRF-Token (the pages read it from
the sign-in answer or GET /api/district). Every sign-in, failed sign-in and sign-out goes to soc.audit.
"""
from __future__ import annotations

from typing import Annotated

from faust import web
from pydantic import Field

from handlers.permissions import Can
from schemas.accounts import UserId, UserRole
from streams.accounts import SignIn
from streams.http.api import SESSION_COOKIE, ApiError, Body, JsonView, Principal, only_params, page_param, validate

Password = Annotated[str, Field(min_length=1, max_length=256)]
MAX_AUDIT_PAGE = 500


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


def _secure(view: JsonView, request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto") == "https" \
        or view.http.settings.public_url.startswith("https://")


def _signed_in(who: Principal) -> dict:
    return {"user": who.actor.model_dump(mode="json"), "community": who.community, "csrf": who.csrf}


class Login(JsonView):
    async def post(self, request: web.Request) -> web.Response:
        return await self.guarded(self._post, request)

    async def _post(self, request: web.Request) -> web.Response:
        http = self.http
        body = validate(LoginBody, await http.read_json(request))
        wait = http.sign_in_limiter.allow(f"addr:{request.remote}")
        if wait:  # counted, not written to the trail: a flood would push real lines out of it
            http.pipeline.metrics.sign_ins.labels("throttled").inc()
            raise ApiError(429, "too many sign-ins from this address: wait a little", retry_after_s=round(wait, 1))
        result = await http.accounts.sign_in(body.user, body.password)
        http.pipeline.metrics.sign_ins.labels(result.outcome.value).inc()
        actor = result.user.actor() if result.user else None
        if result.outcome is not SignIn.ok:
            if result.outcome is SignIn.locked and result.failures:
                http.pipeline.metrics.lockouts.inc()
            # A name that is no user's is not written down: people type their password there by mistake.
            http.audit(request, "sign_in_failed", "sign_in", actor=actor,
                       user_id=actor.user_id if actor else "(unknown)", outcome=result.outcome.value)
            if result.outcome is SignIn.locked:
                minutes = max(1, http.config.district.sign_in.lockout_s // 60)
                raise ApiError(429, f"too many failed sign-ins: this account is locked for {minutes} minutes")
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
        return await self.guarded(self._post, request)

    async def _post(self, request: web.Request) -> web.Response:
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
        return await self.guarded(self._get, request)

    async def post(self, request: web.Request) -> web.Response:
        return await self.guarded(self._post, request)

    async def _get(self, request: web.Request) -> web.Response:
        (await self.http.authenticate(request)).require(Can.manage_users)
        return self.json({"users": [u.public() for u in await self.http.accounts.all()]})

    async def _post(self, request: web.Request) -> web.Response:
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


USER_ACTIONS = ("disable", "enable", "reset", "token", "revoke")


class UserAction(JsonView):
    async def post(self, request: web.Request, user_id: str, action: str) -> web.Response:
        return await self.guarded(self._post, request, user_id, action)

    async def _post(self, request: web.Request, user_id: str, action: str) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.manage_users)
        if action not in USER_ACTIONS:
            raise ApiError(404, f"no action {action!r}; actions: {', '.join(USER_ACTIONS)}")
        accounts = self.http.accounts
        if len(user_id) > 32 or await accounts.get(user_id) is None:
            raise ApiError(404, f"no user {user_id[:32]}")
        if user_id == who.actor.user_id and action == "disable":
            raise ApiError(409, "you cannot disable your own account: another admin can")
        answer: dict
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
        elif action == "revoke":
            answer = {"user_id": user_id, "revoked": await accounts.revoke_tokens(user_id)}
        elif action == "disable":
            answer = (await accounts.disable(user_id)).public()
        else:
            answer = (await accounts.enable(user_id)).public()
        self.http.audit(request, "users", f"users.{action}", who, target=user_id)
        return self.json(answer)


class Audit(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        return await self.guarded(self._get, request)

    async def _get(self, request: web.Request) -> web.Response:
        (await self.http.authenticate(request)).require(Can.read_audit)
        query = request.query
        only_params(query, {"limit", "offset", "user", "what"})
        limit = page_param(query, "limit", 100, MAX_AUDIT_PAGE)
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
