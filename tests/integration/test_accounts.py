"""Accounts against a running worker, real broker and Redis: the role x route matrix with signed-in
users and service credentials, sign-in and its cookie, CSRF, lockout, idle expiry, API tokens, the
person in every history entry and the audit trail (GET /api/audit)."""
from __future__ import annotations

import http.client
import json
import re
import shutil
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from streams.accounts import service_actor
from streams.settings import REPO_ROOT
from tests.integration.payloads import Builder
from tests.support import CONFIG, TEST_PASSWORD, Pipeline, poll, running_pipeline

pytestmark = pytest.mark.integration

# User ids are this module's own (the session's stack is shared): [a-z][a-z0-9_.-]{1,31}.
RUN = f"acc{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Who:
    key: str
    department: str
    role: str
    name: str = ""
    service: bool = False  # the department's token from the environment, not a person

    @property
    def user_id(self) -> str:
        return f"service:{self.department}" if self.service else f"{RUN}.{self.key}"

    @property
    def display(self) -> str:
        return service_actor(CONFIG, self.department).name if self.service else self.name


PEOPLE = {w.key: w for w in [
    Who("clerk", "traffic_police", "clerk", "王警官"),
    Who("clerk_other", "flood_control", "clerk", "李工"),
    Who("supervisor", "traffic_police", "supervisor", "赵队长"),
    Who("supervisor_other", "flood_control", "supervisor", "钱主任"),
    Who("duty", "ops_centre", "duty_officer", "张伟"),
    Who("duty_b", "ops_centre", "duty_officer", "李娜"),
    Who("leader", "district_leadership", "leader", "陈建国"),
    Who("admin", "ops_centre", "admin", "系统管理员"),
    Who("community", "ws_haibin", "clerk", "海滨网格员"),         # sees the haibin community's tickets
    Who("community_other", "ws_wanghai", "clerk", "望海网格员"),
    Who("service", "traffic_police", "service", service=True),
    Who("service_other", "flood_control", "service", service=True),
    Who("service_centre", "ops_centre", "service", service=True),
]}
ROLES = list(PEOPLE)


class People:
    """Each person signed in once for the module; `call` acts as one of them."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.headers: dict[str, dict[str, str]] = {}
        for who in PEOPLE.values():
            if who.service:
                self.headers[who.key] = {"Authorization": f"Bearer {pipeline.tokens[who.department]}"}
            else:
                pipeline.add_user(who.user_id, who.department, who.role, name=who.name)
                self.headers[who.key] = pipeline.sign_in(who.user_id)

    def call(self, key: str, method: str, path: str, body: dict | bytes | None = None) -> tuple[int, dict]:
        return unthrottled(lambda: self.pipeline.raw_request(method, path, body, self.headers[key])[:2])


def unthrottled(request):
    """A request again after the API's rate limit (per token: a matrix spends one fast), not under test here."""
    deadline = time.monotonic() + 30
    while True:
        status, payload = request()
        if status != 429 or payload.get("error") != "too many requests" or time.monotonic() > deadline:
            return status, payload
        time.sleep(payload.get("retry_after_s", 0.5))


@pytest.fixture(scope="module")
def people(pipeline) -> People:
    return People(pipeline)


class Tickets:
    """Fresh traffic_police tickets in the haibin community, made in one batch and handed out."""

    def __init__(self, pipeline: Pipeline, count: int):
        self.pipeline = pipeline
        self.made = 0
        self.pool = self.make(count)

    def make(self, count: int, community: str = "haibin") -> list[str]:
        # Each on a day of its own (its own builder), so that none merges into another.
        events = []
        for _ in range(count):
            self.made += 1
            events.append(Builder(CONFIG, f"{RUN}-t{self.made}").traffic(community=community))
        for event in events:
            self.pipeline.send("soc.raw.traffic", event)
        refs = {e["event_id"] for e in events}
        found = poll(lambda: (lambda got: got if len(got) == count else None)(
            self.pipeline.tickets_where(lambda t: t.source_ref in refs)), 60, f"{count} tickets")
        by_ref = {t.source_ref: t.ticket_id for t in found}
        return [by_ref[e["event_id"]] for e in events]

    def fresh(self, state: str = "dispatched") -> str:
        ticket_id = self.pool.pop() if self.pool else self.make(1)[0]
        bring(self.pipeline, ticket_id, state)
        return ticket_id


def service_act(pipeline: Pipeline, department: str, ticket_id: str, action: str, body: dict) -> dict:
    status, ticket = unthrottled(lambda: pipeline.post(f"/api/tickets/{ticket_id}/{action}", department, body))
    assert status == 200, (action, ticket)
    return ticket


def bring(pipeline: Pipeline, ticket_id: str, state: str) -> None:
    """A dispatched ticket into `state`, by the traffic police's service credential."""
    if state in ("accepted", "resolved"):
        service_act(pipeline, "traffic_police", ticket_id, "accept", {})
    if state == "resolved":
        service_act(pipeline, "traffic_police", ticket_id, "resolve", {"resolution": "已处置"})
    if state == "extension":
        due = pipeline.ticket(ticket_id).resolve_due
        service_act(pipeline, "traffic_police", ticket_id, "extend",
                    {"until": (due + timedelta(hours=4)).isoformat(), "reason": "等待配件"})


@pytest.fixture(scope="module")
def tickets(pipeline) -> Tickets:
    return Tickets(pipeline, 24)


@pytest.fixture(scope="module")
def shared(tickets) -> dict[str, str]:
    """One ticket per state, for the refusals (a refusal changes nothing, so they can share)."""
    return {state: tickets.fresh(state) for state in ("dispatched", "accepted", "resolved", "extension")}


def history_of(pipeline: Pipeline, ticket_id: str) -> list[dict]:
    """From Redis (the API's answers are the tests' subject)."""
    return pipeline.ticket(ticket_id).model_dump(mode="json")["history"]


# ------------------------------------------------------------------ the role x route matrix

READ = {"clerk": 200, "clerk_other": 404, "supervisor": 200, "supervisor_other": 404, "duty": 200, "duty_b": 200,
        "leader": 200, "admin": 403, "community": 200, "community_other": 404, "service": 200,
        "service_other": 404, "service_centre": 200}


@pytest.mark.parametrize("key", ROLES)
def test_reading_a_ticket(people, shared, key):
    ticket_id = shared["dispatched"]
    status, body = people.call(key, "GET", f"/api/tickets/{ticket_id}")
    assert status == READ[key], body
    if status == 200:
        assert body["ticket_id"] == ticket_id
    # The listing answers everyone who reads tickets (each their own inbox, or all of them).
    status, listing = people.call(key, "GET", "/api/tickets?limit=200&status=dispatched")
    assert status == (403 if key == "admin" else 200), listing
    if READ[key] == 404:
        assert ticket_id not in {t["ticket_id"] for t in listing["items"]}


ACTION = {  # name -> (route action, the state it acts on, body)
    "accept": ("accept", "dispatched", {"note": "已签收"}),
    "resolve": ("resolve", "accepted", {"resolution": "事故车辆已拖离"}),
    "verify": ("verify", "resolved", {"passed": True}),
    "redispatch": ("redispatch", "dispatched", {"department": "city_management"}),
    "decide": ("extend", "extension", {"approve": True}),
    "comment": ("comment", "dispatched", {"note": "请尽快处置"}),
}
# The ticket is traffic_police's, in the haibin community. 404: cannot see it; 403: the role may not;
# 409: the lifecycle refuses (not the owner, not the centre, your own work, a service credential as the
# second person: the shared tickets are resolved through the department's token); 422: a body the role
# cannot send (only the centre and a supervisor send "approve").
ACTS = {
    "accept": {"clerk": 200, "clerk_other": 404, "supervisor": 200, "supervisor_other": 404, "duty": 409,
               "duty_b": 409, "leader": 403, "admin": 403, "community": 409, "community_other": 404,
               "service": 200, "service_other": 404, "service_centre": 409},
    "resolve": {"clerk": 200, "clerk_other": 404, "supervisor": 200, "supervisor_other": 404, "duty": 409,
                "duty_b": 409, "leader": 403, "admin": 403, "community": 409, "community_other": 404,
                "service": 200, "service_other": 404, "service_centre": 409},
    "verify": {"clerk": 403, "clerk_other": 404, "supervisor": 403, "supervisor_other": 404, "duty": 200,
               "duty_b": 200, "leader": 403, "admin": 403, "community": 403, "community_other": 404,
               "service": 409, "service_other": 404, "service_centre": 409},
    "redispatch": {"clerk": 403, "clerk_other": 404, "supervisor": 403, "supervisor_other": 404, "duty": 200,
                   "duty_b": 200, "leader": 403, "admin": 403, "community": 403, "community_other": 404,
                   "service": 409, "service_other": 404, "service_centre": 200},
    "decide": {"clerk": 422, "clerk_other": 404, "supervisor": 200, "supervisor_other": 404, "duty": 200,
               "duty_b": 200, "leader": 422, "admin": 403, "community": 422, "community_other": 404,
               "service": 422, "service_other": 404, "service_centre": 200},
    "comment": {"clerk": 200, "clerk_other": 404, "supervisor": 200, "supervisor_other": 404, "duty": 200,
                "duty_b": 200, "leader": 200, "admin": 403, "community": 409, "community_other": 404,
                "service": 200, "service_other": 404, "service_centre": 200},
}
ACT_CASES = [(action, key, expected) for action, table in ACTS.items() for key, expected in table.items()]


@pytest.mark.parametrize("action,key,expected", ACT_CASES, ids=[f"{a}-{k}" for a, k, _ in ACT_CASES])
def test_acting_on_a_ticket(pipeline, people, tickets, shared, action, key, expected):
    route, state, body = ACTION[action]
    ticket_id = tickets.fresh(state) if expected == 200 else shared[state]
    who = PEOPLE[key]

    def mine() -> list[dict]:
        return [h for h in history_of(pipeline, ticket_id) if (h.get("user") or {}).get("user_id") == who.user_id]

    before = mine()
    status, answer = people.call(key, "POST", f"/api/tickets/{ticket_id}/{route}", body)
    assert status == expected, answer
    after = mine()
    if expected == 200:
        assert len(after) == len(before) + 1
        assert after[-1]["user"] == {"user_id": who.user_id, "name": who.display, "department": who.department,
                                     "role": who.role}
    else:
        assert "error" in answer and after == before  # a refusal leaves no trace on the ticket
    if expected == 409:
        assert answer["status"] == state if state != "extension" else answer["status"] == "dispatched"


ROUTES = {  # name -> (method, path, body)
    "silences": ("GET", "/api/silences", None),
    "silenced": ("GET", "/api/silenced", None),
    # A real level would change every ticket of the shared stack: an invalid one shows who passes the
    # door (422: allowed in, then the body refused) and who does not (403).
    "response": ("POST", "/api/response", {"level": "V", "reason": "演练"}),
    "users": ("GET", "/api/users", None),
    # An admin's own: a token for anyone else is minted at the server's shell (test below).
    "user_token": ("POST", f"/api/users/{RUN}.admin/token", {}),
    "audit": ("GET", "/api/audit?limit=5", None),
    "board": ("GET", "/api/district", None),
    "performance": ("GET", "/api/performance", None),
}
CENTRE = {"duty", "duty_b", "service_centre"}
ALLOWED = {
    "silences": CENTRE, "silenced": CENTRE,
    "response": CENTRE | {"leader"},
    "users": {"admin"}, "user_token": {"admin"}, "audit": {"admin"},
    "board": set(ROLES), "performance": set(ROLES) - {"admin"},
}
ROUTE_CASES = [(route, key) for route in ROUTES for key in ROLES]


@pytest.mark.parametrize("route,key", ROUTE_CASES, ids=[f"{r}-{k}" for r, k in ROUTE_CASES])
def test_the_other_routes(people, route, key):
    method, path, body = ROUTES[route]
    status, answer = people.call(key, method, path, body)
    if key not in ALLOWED[route]:
        assert status == 403, answer
        assert answer["error"]
    elif route == "response":
        assert status == 422 and answer["fields"][0]["loc"] == "level", answer
    else:
        assert status == 200, answer


@pytest.mark.parametrize("key", ROLES)
def test_making_and_ending_a_silence(people, key):
    spec = {"matchers": [{"name": "ref", "value": f"NOTHING-{RUN}-{key}"}, {"name": "source", "value": "flood"}],
            "comment": "泵站计划检修", "starts_at": datetime.now(timezone.utc).isoformat(),
            "ends_at": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()}
    status, silence = people.call(key, "POST", "/api/silences", spec)
    if key not in CENTRE:
        assert status == 403, silence
        return
    who = PEOPLE[key]
    assert status == 201 and silence["created_by"] == who.display, silence
    poll(lambda: any(s["silence_id"] == silence["silence_id"]
                     for s in people.call(key, "GET", "/api/silences?state=active")[1]["silences"]),
         30, "the silence on the worker")
    status, ended = people.call(key, "DELETE", f"/api/silences/{silence['silence_id']}")
    assert status == 200 and ended["expired_by"] == who.display, ended


def board_snapshot(pipeline: Pipeline, headers: dict) -> tuple[int, list[dict]]:
    """The first event of a board stream: (status, the snapshot's tickets)."""
    where = urlsplit(pipeline.worker.url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=15)
    try:
        connection.request("GET", "/api/alerts/stream", headers=headers)
        response = connection.getresponse()
        if response.status != 200:
            return response.status, []
        event = None
        while True:
            line = response.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: ") and event == "snapshot":
                return 200, json.loads(line[len("data: "):])
    finally:
        connection.close()


@pytest.fixture(scope="module")
def community_tickets(tickets) -> dict[str, str]:
    """Open traffic_police tickets in haibin and in wanghai, never acted on."""
    return {"haibin": tickets.make(1, "haibin")[0], "wanghai": tickets.make(1, "wanghai")[0]}


BOARD = {  # who -> which of the two tickets the board shows (None: no board)
    "clerk": {"haibin", "wanghai"}, "supervisor": {"haibin", "wanghai"}, "clerk_other": set(),
    "duty": {"haibin", "wanghai"}, "leader": {"haibin", "wanghai"}, "admin": None,
    "community": {"haibin"}, "community_other": {"wanghai"},
    "service": {"haibin", "wanghai"}, "service_other": set(), "service_centre": {"haibin", "wanghai"},
}


@pytest.mark.parametrize("key", list(BOARD))
def test_the_board_shows_each_their_department_or_community(pipeline, people, community_tickets, key):
    status, snapshot = board_snapshot(pipeline, {k: v for k, v in people.headers[key].items() if k != "X-CSRF-Token"})
    expected = BOARD[key]
    if expected is None:
        assert status == 403
        return
    assert status == 200
    shown = {t["ticket_id"] for t in snapshot}
    assert {c for c, ticket_id in community_tickets.items() if ticket_id in shown} == expected
    if key.startswith("community"):
        community = CONFIG.district.departments[PEOPLE[key].department].community
        department = PEOPLE[key].department
        assert all(t["community"] == community or department in (t["department"], *t["watchers"]) for t in snapshot)


@pytest.mark.parametrize("key, community, expected", [
    ("community", "haibin", {"haibin"}),          # its own community's tickets, whoever owns them
    ("community", "wanghai", set()),              # another community: its inbox only, filtered
    ("community_other", "wanghai", {"wanghai"}),
    ("clerk_other", "haibin", set()),             # a department without a community: its inbox
])
def test_a_workstation_lists_its_communitys_tickets(people, community_tickets, key, community, expected):
    status, listing = people.call(key, "GET", f"/api/tickets?community={community}&limit=200")
    assert status == 200, listing
    listed = {item["ticket_id"] for item in listing["items"]}
    assert {c for c, ticket_id in community_tickets.items() if ticket_id in listed} == expected
    assert all(item["community"] == community for item in listing["items"])


# ------------------------------------------------------------------ sign-in, cookie, CSRF, sessions

def test_signing_in_sets_an_http_only_strict_cookie_and_answers_the_csrf_token(pipeline, people):
    who = PEOPLE["clerk"]
    status, body, headers = pipeline.raw_request("POST", "/api/login", {"user": who.user_id, "password": TEST_PASSWORD})
    assert status == 200, body
    cookie = headers["Set-Cookie"]
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert cookie.startswith("soc_session=") and "httponly" in attributes and "secure" not in attributes
    assert re.search(r"SameSite=Strict", cookie, re.I) and "Path=/" in cookie
    assert body["user"] == {"user_id": who.user_id, "name": who.name, "department": who.department,
                            "role": "clerk"}
    assert body["csrf"] and body["csrf"] not in cookie


def test_a_state_change_with_the_cookie_needs_the_csrf_token(pipeline, people, tickets):
    ticket_id = tickets.fresh()
    session = people.headers["clerk"]
    cookie_only = {"Cookie": session["Cookie"]}
    path = f"/api/tickets/{ticket_id}/comment"
    for headers in (cookie_only, {**cookie_only, "X-CSRF-Token": "not-the-token"},
                    {**cookie_only, "X-CSRF-Token": ""}):
        status, body, _ = pipeline.raw_request("POST", path, {"note": "无令牌"}, headers)
        assert status == 403 and "X-CSRF-Token" in body["error"], body
    assert not [h for h in history_of(pipeline, ticket_id) if h["action"] == "comment"]
    # GET needs none.
    assert pipeline.raw_request("GET", f"/api/tickets/{ticket_id}", None, cookie_only)[0] == 200
    status, body, _ = pipeline.raw_request("POST", path, {"note": "有令牌"}, session)
    assert status == 200 and body["history"][-1]["note"] == "有令牌", body


def test_a_wrong_password_and_an_unknown_user_get_the_same_401(pipeline, people):
    wrong = pipeline.raw_request("POST", "/api/login", {"user": PEOPLE["duty_b"].user_id, "password": "not-it-at-all"})
    unknown = pipeline.raw_request("POST", "/api/login", {"user": f"{RUN}.nobody", "password": "not-it-at-all"})
    assert wrong[0] == unknown[0] == 401
    assert wrong[1] == unknown[1] == {"error": "wrong user name or password"}
    assert "Set-Cookie" not in wrong[2] and "Set-Cookie" not in unknown[2]


def metric(pipeline: Pipeline, line: str) -> float:
    text = urllib.request.urlopen(f"{pipeline.worker.url}/metrics", timeout=10).read().decode()
    found = re.search(rf"^{re.escape(line)} (\S+)$", text, re.M)
    assert found, line
    return float(found.group(1))


THROTTLED = 'soc_sign_in_throttled_total{reason="account_address"}'


def test_failed_sign_ins_slow_their_address_on_that_account_and_lock_nobody_out(pipeline, people):
    user_id = pipeline.add_user(f"{RUN}.guessed", "traffic_police", "clerk")
    throttled_before = metric(pipeline, THROTTLED)
    rules = CONFIG.district.sign_in
    guesser = "127.0.0.5"  # the whole of 127/8 is the loopback: an address of this test's own
    answers = [sign_in_from(pipeline, guesser, user_id, f"wrong-{i}-password") for i in range(rules.free_failures)]
    assert [a[0] for a in answers] == [401] * rules.free_failures, answers
    # The next try from there waits first_delay (30 s), the right password too: it is not even checked.
    status, body = sign_in_from(pipeline, guesser, user_id, TEST_PASSWORD)
    assert status == 429 and 0 < body["retry_after_s"] <= rules.first_delay_s, body
    assert body["error"] == f"too many failed sign-ins to this account from this address: try again in " \
                            f"{body['retry_after_s']} s"
    assert metric(pipeline, THROTTLED) >= throttled_before + 1
    # The account is not locked: its owner signs in from another address.
    assert pipeline.sign_in(user_id)


def test_logout_ends_the_session(pipeline, people):
    user_id = pipeline.add_user(f"{RUN}.leaving", "flood_control", "clerk")
    session = pipeline.sign_in(user_id)
    assert pipeline.raw_request("GET", "/api/district", None, session)[0] == 200
    status, body, _ = pipeline.raw_request("POST", "/api/logout", {}, {"Cookie": session["Cookie"]})
    assert status == 403  # signing out is a state change too
    status, body, headers = pipeline.raw_request("POST", "/api/logout", {}, session)
    assert status == 200 and body == {"signed_out": True}
    assert headers["Set-Cookie"].startswith("soc_session=")  # the cookie is cleared
    status, body, _ = pipeline.raw_request("GET", "/api/district", None, session)
    assert status == 401 and "sign in again" in body["error"]


def test_a_disabled_user_loses_session_and_token_and_cannot_sign_in(pipeline, people):
    user_id = pipeline.add_user(f"{RUN}.leaver", "traffic_police", "clerk")
    session = pipeline.sign_in(user_id)
    token = pipeline.user_token(user_id)
    assert token.startswith("socu_")
    bearer = {"Authorization": f"Bearer {token}"}
    for headers in (session, bearer):
        assert pipeline.raw_request("GET", "/api/tickets", None, headers)[0] == 200

    status, body = people.call("admin", "POST", f"/api/users/{user_id}/disable", {})
    assert status == 200 and body["disabled"] is True
    for headers in (session, bearer):
        assert pipeline.raw_request("GET", "/api/tickets", None, headers)[0] == 401
    status, body, _ = pipeline.raw_request("POST", "/api/login", {"user": user_id, "password": TEST_PASSWORD})
    assert status == 403 and "disabled" in body["error"]

    assert people.call("admin", "POST", f"/api/users/{user_id}/enable", {})[0] == 200
    assert pipeline.raw_request("GET", "/api/district", None, pipeline.sign_in(user_id))[0] == 200
    assert pipeline.raw_request("GET", "/api/tickets", None, bearer)[0] == 401  # disabling revoked it for good


def test_a_user_token_acts_as_its_user_without_csrf_until_revoked(pipeline, people, tickets):
    who = PEOPLE["supervisor"]
    # Over HTTP an admin mints a token for nobody but themselves: one in someone else's name is the shell's.
    status, refused = people.call("admin", "POST", f"/api/users/{who.user_id}/token", {})
    assert status == 403 and "soc users token" in refused["error"], refused
    issued = {"token": pipeline.user_token(who.user_id)}
    for spelling in ("Bearer", "bearer"):
        assert pipeline.request("GET", "/api/tickets", token=None,
                                headers={"Authorization": f"{spelling} {issued['token']}"})[0] == 200
    ticket_id = tickets.fresh()
    status, ticket = pipeline.post(f"/api/tickets/{ticket_id}/accept", None, {"note": "脚本签收"}, token=issued["token"])
    assert status == 200 and ticket["history"][-1]["user"]["user_id"] == who.user_id
    status, body = people.call("admin", "POST", f"/api/users/{who.user_id}/revoke", {})
    assert status == 200 and body["revoked"] >= 1
    status, body = pipeline.get("/api/tickets", token=issued["token"])
    assert status == 401 and body["error"] == "unknown token"
    # Revoking tokens leaves the user's page session alone.
    assert people.call("supervisor", "GET", "/api/district")[0] == 200


def test_a_users_list_never_shows_password_hashes(people):
    status, body = people.call("admin", "GET", "/api/users")
    assert status == 200
    mine = {u["user_id"]: u for u in body["users"] if u["user_id"].startswith(RUN)}
    assert mine[PEOPLE["clerk"].user_id]["role"] == "clerk"
    assert "password_hash" not in json.dumps(body) and "argon2" not in json.dumps(body)


# ------------------------------------------------------------------ identity in the record

@pytest.mark.parametrize("key", ["clerk", "supervisor", "service"])
def test_an_action_body_with_by_is_422(people, shared, key):
    status, body = people.call(key, "POST", f"/api/tickets/{shared['dispatched']}/comment",
                               {"by": "值班员 (ops_centre)", "note": "冒名"})
    assert status == 422 and body["fields"] == [{"loc": "by", "msg": "not accepted"}], body


def test_the_history_names_the_person_and_the_service(pipeline, people, tickets):
    ticket_id = tickets.fresh()
    steps = [("clerk", "accept", {}), ("clerk", "comment", {"note": "已到场"}),
             ("service", "comment", {"note": "设备自动回传"}), ("clerk", "resolve", {"resolution": "已拖离"}),
             ("duty", "verify", {"passed": True})]
    for key, action, body in steps:
        status, ticket = people.call(key, "POST", f"/api/tickets/{ticket_id}/{action}", body)
        assert status == 200, (key, action, ticket)
    entries = ticket["history"][-len(steps):]
    for (key, _, _), entry in zip(steps, entries):
        who = PEOPLE[key]
        assert entry["user"] == {"user_id": who.user_id, "name": who.display, "department": who.department,
                                 "role": who.role}
        assert entry["by"].startswith(who.display)
    assert entries[2]["user"]["user_id"] == "service:traffic_police" and "接口凭据" in entries[2]["by"]
    assert ticket["status"] == "closed"


def centre_ticket(pipeline: Pipeline, build: Builder) -> str:
    """A ticket outside every community: the operations centre owns it."""
    event = build.traffic(lat=22.58, lon=113.95)
    pipeline.send("soc.raw.traffic", event)
    [ticket] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == event["event_id"]), 30, "the ticket")
    assert ticket.department == "ops_centre", ticket.department
    return ticket.ticket_id


@pytest.mark.parametrize("resolver,verifier", [("duty", "duty_b"), ("service_centre", "duty")])
def test_whoever_resolved_a_centre_ticket_does_not_verify_it(pipeline, people, build, resolver, verifier):
    ticket_id = centre_ticket(pipeline, build)
    for action, body in (("accept", {}), ("resolve", {"resolution": "已处置"})):
        status, ticket = people.call(resolver, "POST", f"/api/tickets/{ticket_id}/{action}", body)
        assert status == 200, ticket
    status, refused = people.call(resolver, "POST", f"/api/tickets/{ticket_id}/verify", {"passed": True})
    assert status == 409 and "someone else verifies" in refused["error"] and refused["status"] == "resolved"
    status, closed = people.call(verifier, "POST", f"/api/tickets/{ticket_id}/verify", {"passed": True})
    assert status == 200 and closed["status"] == "closed"
    assert closed["history"][-1]["user"]["user_id"] == PEOPLE[verifier].user_id


def test_a_supervisor_decides_the_departments_extensions_but_not_their_own(pipeline, people, tickets):
    def ask(key: str) -> str:
        ticket_id = tickets.fresh()
        due = pipeline.ticket(ticket_id).resolve_due
        status, asked = people.call(key, "POST", f"/api/tickets/{ticket_id}/extend",
                                    {"until": (due + timedelta(hours=2)).isoformat(), "reason": "需协调拖车"})
        assert status == 200 and asked["extension"]["user_id"] == PEOPLE[key].user_id, asked
        return ticket_id

    by_clerk = ask("clerk")
    assert people.call("supervisor_other", "POST", f"/api/tickets/{by_clerk}/extend", {"approve": True})[0] == 404
    status, decided = people.call("supervisor", "POST", f"/api/tickets/{by_clerk}/extend", {"approve": True})
    assert status == 200 and decided["extension"] is None, decided
    assert decided["history"][-1]["action"].startswith("extension approved")
    assert decided["history"][-1]["user"]["user_id"] == PEOPLE["supervisor"].user_id

    by_supervisor = ask("supervisor")
    status, refused = people.call("supervisor", "POST", f"/api/tickets/{by_supervisor}/extend", {"approve": False})
    assert status == 409 and "someone else decides" in refused["error"], refused
    status, decided = people.call("duty", "POST", f"/api/tickets/{by_supervisor}/extend", {"approve": False})
    assert status == 200 and decided["history"][-1]["action"] == "extension rejected"


# ------------------------------------------------------------------ the audit trail

def audit_records(people: People, **query: str) -> list[dict]:
    path = "/api/audit?limit=500" + "".join(f"&{k}={v}" for k, v in query.items())
    status, body = people.call("admin", "GET", path)
    assert status == 200, body
    return body["records"]


def test_every_action_and_sign_in_is_audited_without_secrets(pipeline, people, tickets):
    user_id = pipeline.add_user(f"{RUN}.audited", "traffic_police", "clerk", name="孙警官")
    wrong_password = f"wrong-{uuid.uuid4().hex}"
    assert pipeline.raw_request("POST", "/api/login", {"user": user_id, "password": wrong_password})[0] == 401
    unknown = f"{RUN}.ghost"
    assert pipeline.raw_request("POST", "/api/login", {"user": unknown, "password": wrong_password})[0] == 401
    session = pipeline.sign_in(user_id)
    ticket_id = tickets.fresh()
    for action, body in (("accept", {"note": "已签收，联系13912345678"}), ("comment", {"note": "现场有积水"}),
                         ("verify", {"passed": True})):
        pipeline.raw_request("POST", f"/api/tickets/{ticket_id}/{action}", body, session)
    admin = PEOPLE["admin"].user_id
    status, issued = people.call("admin", "POST", f"/api/users/{admin}/token", {})
    assert status == 200
    assert pipeline.raw_request("POST", "/api/logout", {}, session)[0] == 200

    wanted = {("sign_in_failed", "sign_in", "wrong"), ("sign_in", "sign_in", "ok"), ("action", "ticket.accept", "ok"),
              ("action", "ticket.comment", "ok"), ("action", "ticket.verify", "refused"), ("sign_out", "sign_out", "ok")}

    def mine():
        records = audit_records(people, user=user_id)
        return records if wanted <= {(r["kind"], r["what"], r["outcome"]) for r in records} else None

    records = poll(mine, 30, "the user's audit records")
    actor = {"user_id": user_id, "name": "孙警官", "department": "traffic_police", "role": "clerk"}
    for record in records:
        if (record["kind"], record["what"]) != ("sign_in_failed", "sign_in"):
            assert record["actor"] == actor, record
        if record["what"].startswith("ticket."):
            assert record["target"] == ticket_id
    accepted = next(r for r in records if r["what"] == "ticket.accept")
    assert "13912345678" not in accepted["detail"] and "已签收" in accepted["detail"]
    refused = next(r for r in records if r["what"] == "ticket.verify")
    assert refused["detail"] == "role clerk"
    # A name that is no user's is not written down (a password typed into the name field, say).
    poll(lambda: audit_records(people, user="(unknown)"), 30, "the unknown name's failed sign-in")
    assert all(r["actor"] is None for r in audit_records(people, user="(unknown)"))
    token_records = poll(lambda: [r for r in audit_records(people, what="users.token") if r["target"] == admin],
                         30, "the token's audit record")  # the matrix's token request is one of them too
    assert all(r["actor"]["user_id"] == admin for r in token_records)

    everything = json.dumps(audit_records(people), ensure_ascii=False)
    cookie = session["Cookie"].split("=", 1)[1]
    for secret in (TEST_PASSWORD, wrong_password, issued["token"], cookie, session["X-CSRF-Token"], unknown):
        assert secret not in everything


# ------------------------------------------------------------------ a stack with a short idle expiry

IDLE_S = 2


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """A stack whose sessions end after 2 s idle and that lets an address sign in 3 times."""
    config_dir = tmp_path_factory.mktemp("accounts") / "config"
    shutil.copytree(REPO_ROOT / "deploy" / "config", config_dir)
    district = config_dir / "district.yaml"
    text = district.read_text(encoding="utf-8")
    text, found = re.subn(r"^(  idle_expiry:) *\S+", rf"\1 {IDLE_S}s", text, flags=re.M)
    if not found:
        text += f"sign_in:\n  idle_expiry: {IDLE_S}s\n"
    district.write_text(text, encoding="utf-8")
    with running_pipeline(tmp_path_factory.mktemp("accounts-stack"), config_dir=config_dir,
                          SOC_SIGN_IN_BURST="3", SOC_SIGN_IN_RATE_PER_S="0.01") as running:
        assert running.config.district.sign_in.idle_expiry_s == IDLE_S
        yield running


def test_a_session_idle_past_its_expiry_ends_and_one_in_use_does_not(short):
    user_id = short.add_user(f"{RUN}.idle", "district_leadership", "leader", name="林海涛")
    session = short.sign_in(user_id)
    # In use, it outlives its idle expiry twice over.
    started = time.monotonic()
    while time.monotonic() - started < 2 * IDLE_S:
        assert short.raw_request("GET", "/api/district", None, session)[0] == 200
        time.sleep(IDLE_S / 4)
    # A leader's manual level names the leader (this stack is the test's own: the level touches no one else).
    status, state, _ = short.raw_request("POST", "/api/response", {"level": "IV", "reason": "台风蓝色预警"}, session)
    assert status == 201 and state["history"][0]["by"] == "林海涛", state
    # Left alone, it ends (each look waits longer than the expiry, so looking does not keep it alive).
    poll(lambda: short.raw_request("GET", "/api/district", None, session)[0] == 401, 30,
         "the idle session to end", interval=IDLE_S + 0.5)


def sign_in_from(pipeline: Pipeline, address: str, user: str, password: str) -> tuple[int, dict]:
    where = urlsplit(pipeline.worker.url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=15, source_address=(address, 0))
    try:
        connection.request("POST", "/api/login", json.dumps({"user": user, "password": password}),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_sign_ins_are_throttled_per_address(short):
    user_id = short.add_user(f"{RUN}.throttled", "traffic_police", "clerk")
    other = "127.0.0.2"  # the whole of 127/8 is the loopback: an address of this test's own
    answers = [sign_in_from(short, other, f"{RUN}.guess{i}", "guessing-a-password") for i in range(3)]
    assert [a[0] for a in answers] == [401, 401, 401]
    status, body = sign_in_from(short, other, user_id, TEST_PASSWORD)
    assert status == 429 and "from this address" in body["error"] and body["retry_after_s"] > 0, body
    # The account itself is not locked, and another address signs in.
    status, body = sign_in_from(short, "127.0.0.1", user_id, TEST_PASSWORD)
    assert status == 200, body
    assert metric(short, 'soc_sign_ins_total{result="throttled"}') >= 1
