"""The API against hostile clients, over real HTTP on a stack of its own with small budgets: one identity
looping 200-row pages is refused before it starves anyone; guessing feed tokens, Open311 keys and bearer
tokens is throttled per address; failed sign-ins slow the guesser on that account and never lock the owner
out; sign-in and cookie state changes refuse other sites and non-JSON bodies; passwords are byte for byte;
user ids are matched whole, with the same words over HTTP and at the shell.

Each test speaks from addresses of its own (the whole of 127/8 is the loopback), so the per-address
budgets of one test never meet another's."""
from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import urllib.request
import uuid
from urllib.parse import urlsplit

import pytest

from schemas.accounts import USER_ID_RULE
from streams.ops.devstack import soc_command
from streams.settings import REPO_ROOT
from tests.support import TEST_PASSWORD, Pipeline, running_pipeline

pytestmark = pytest.mark.integration

RUN = f"hc{uuid.uuid4().hex[:6]}"
API_BURST, API_RATE = 40, 0.2   # an identity's budget: 40 units, refilled 1 unit every 5 s
ADDRESS_BURST = 5               # refused credentials and sign-ins per address, refilled one a 100 s
FREE_FAILURES, FIRST_DELAY_S, ACCOUNT_CEILING = 2, 60, 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Pipeline:
    config_dir = tmp_path_factory.mktemp("hostile") / "config"
    shutil.copytree(REPO_ROOT / "deploy" / "config", config_dir)
    district = config_dir / "district.yaml"
    text = district.read_text(encoding="utf-8")
    for key, value in (("free_failures", FREE_FAILURES), ("first_delay", f"{FIRST_DELAY_S}s"),
                       ("account_ceiling", ACCOUNT_CEILING)):
        text, found = re.subn(rf"^(  {key}:) *\S+", rf"\g<1> {value}", text, flags=re.M)
        assert found == 1, key
    district.write_text(text, encoding="utf-8")
    with running_pipeline(tmp_path_factory.mktemp("hostile-stack"), config_dir=config_dir,
                          SOC_API_BURST=str(API_BURST), SOC_API_RATE_PER_S=str(API_RATE),
                          SOC_SIGN_IN_BURST=str(ADDRESS_BURST), SOC_SIGN_IN_RATE_PER_S="0.01") as running:
        assert running.config.district.sign_in.free_failures == FREE_FAILURES
        yield running


def call(pipeline: Pipeline, address: str, method: str, path: str, body: dict | bytes | None = None,
         headers: dict | None = None) -> tuple[int, object, dict]:
    """(status, JSON body, headers) of one request sent from `address`; a dict body goes as JSON."""
    where = urlsplit(pipeline.worker.url)
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=15, source_address=(address, 0))
    try:
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null"), dict(response.getheaders())
    finally:
        connection.close()


def metric(pipeline: Pipeline, line: str) -> float:
    text = urllib.request.urlopen(f"{pipeline.worker.url}/metrics", timeout=10).read().decode()
    found = re.search(rf"^{re.escape(line)} (\S+)$", text, re.M)
    assert found, line
    return float(found.group(1))


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------ fairness: a budget by cost per identity

def test_an_identity_looping_200_row_pages_is_refused_while_another_reads_on(stack):
    looper = stack.user_token(stack.add_user(f"{RUN}.looper", "traffic_police", "clerk"))
    reader = stack.user_token(stack.add_user(f"{RUN}.reader", "traffic_police", "clerk"))
    # A 200-row page costs 11 (1, and 1 per 20 rows): the burst of 40 pays for three.
    pages = [call(stack, "127.0.1.1", "GET", "/api/tickets?limit=200", headers=bearer(looper)) for _ in range(6)]
    assert [p[0] for p in pages[:3]] == [200, 200, 200], pages
    status, body, headers = pages[3]
    assert status == 429 and body["error"] == "too many requests" and body["retry_after_s"] > 0, body
    assert int(headers["Retry-After"]) >= 1
    # Another identity's one-row reads (1.05 each) all pass: 30 in a row.
    reads = [call(stack, "127.0.1.1", "GET", "/api/tickets?limit=1", headers=bearer(reader))[0] for _ in range(30)]
    assert reads == [200] * 30


# ------------------------------------------------------------------ guessing credentials, per address

def test_guessing_cap_feed_tokens_is_throttled_per_address_and_other_addresses_are_still_heard(stack):
    answers = [call(stack, "127.0.2.1", "POST", "/api/ingest/cap", b"<alert/>",
                    {**bearer(uuid.uuid4().hex), "Content-Type": "application/cap+xml"}) for _ in range(ADDRESS_BURST + 3)]
    assert [a[0] for a in answers] == [401] * ADDRESS_BURST + [429] * 3, answers
    status, body, headers = answers[-1]
    assert body["error"] == "too many refused credentials from this address: wait a little" and "Retry-After" in headers
    status, body, _ = call(stack, "127.0.2.2", "POST", "/api/ingest/cap", b"<alert/>", bearer(uuid.uuid4().hex))
    assert (status, body["error"]) == (401, "unknown token")


def test_guessing_open311_keys_is_throttled_per_address(stack):
    form = "service_code=road_damage&lat=22.5&long=113.91&description=x&api_key={}"
    answers = [call(stack, "127.0.3.1", "POST", "/open311/v2/requests.json", form.format(uuid.uuid4().hex).encode(),
                    {"Content-Type": "application/x-www-form-urlencoded"}) for _ in range(ADDRESS_BURST + 2)]
    assert [a[0] for a in answers] == [403] * ADDRESS_BURST + [429] * 2, answers
    assert answers[-1][1] == [{"code": 429, "description": "too many refused credentials from this address: wait a little"}]


def test_guessing_bearer_tokens_is_throttled_per_address_before_any_is_checked(stack):
    answers = [call(stack, "127.0.4.1", "GET", "/api/tickets", headers=bearer(uuid.uuid4().hex))
               for _ in range(ADDRESS_BURST + 2)]
    assert [a[0] for a in answers] == [401] * ADDRESS_BURST + [429] * 2, answers
    # Once spent, even a good token from there is not checked until the budget refills.
    good = stack.user_token(stack.add_user(f"{RUN}.nat", "flood_control", "clerk"))
    assert call(stack, "127.0.4.1", "GET", "/api/tickets", headers=bearer(good))[0] == 429
    assert call(stack, "127.0.4.2", "GET", "/api/tickets", headers=bearer(good))[0] == 200
    assert metric(stack, 'soc_sign_in_throttled_total{reason="address"}') >= 2 + 1


# ------------------------------------------------------------------ failed sign-ins slow the guesser, not the owner

def sign_in(stack: Pipeline, address: str, user: str, password: str) -> tuple[int, dict, dict]:
    return call(stack, address, "POST", "/api/login", {"user": user, "password": password})


def test_a_guesser_is_slowed_on_the_account_while_its_owner_signs_in_from_their_usual_address(stack):
    owner = stack.add_user(f"{RUN}.duty", "ops_centre", "duty_officer")
    usual, guesser, elsewhere = "127.0.5.1", "127.0.5.2", "127.0.5.3"
    before = {reason: metric(stack, f'soc_sign_in_throttled_total{{reason="{reason}"}}')
              for reason in ("account_address", "account")}
    assert sign_in(stack, usual, owner, TEST_PASSWORD)[0] == 200  # the owner's usual address from now on
    assert [sign_in(stack, guesser, owner, f"guess {i}")[0] for i in range(FREE_FAILURES)] == [401] * FREE_FAILURES
    # The guesser's next try waits a minute: not even the right password is checked.
    status, body, headers = sign_in(stack, guesser, owner, TEST_PASSWORD)
    assert status == 429 and 0 < body["retry_after_s"] <= FIRST_DELAY_S, body
    assert body["error"] == f"too many failed sign-ins to this account from this address: try again in " \
                            f"{body['retry_after_s']} s"
    assert headers["Retry-After"] == str(body["retry_after_s"])
    # Past the account's ceiling an unknown address waits too; the owner's usual one never does.
    assert sign_in(stack, elsewhere, owner, TEST_PASSWORD)[0] == 429
    status, body, headers = sign_in(stack, usual, owner, TEST_PASSWORD)
    assert status == 200 and body["user"]["user_id"] == owner and headers["Set-Cookie"].startswith("soc_session=")
    assert metric(stack, 'soc_sign_in_throttled_total{reason="account_address"}') >= before["account_address"] + 1
    assert metric(stack, 'soc_sign_in_throttled_total{reason="account"}') >= before["account"] + 1


# ------------------------------------------------------------------ sign-in hygiene

def test_signing_in_takes_json_from_this_site_only(stack):
    user = stack.add_user(f"{RUN}.csrf", "traffic_police", "clerk")
    as_json = json.dumps({"user": user, "password": TEST_PASSWORD}).encode()
    status, body, _ = call(stack, "127.0.6.1", "POST", "/api/login", as_json, {"Content-Type": "text/plain"})
    assert (status, body) == (415, {"error": "send the body as JSON (Content-Type: application/json)"})
    foreign = {"error": "a request from another site may not sign in or change anything here"}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"}):
        status, body, _ = call(stack, "127.0.6.2", "POST", "/api/login", as_json,
                               {"Content-Type": "application/json", **headers})
        assert (status, body) == (403, foreign), headers
    own = {"Origin": stack.worker.url, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
    assert call(stack, "127.0.6.3", "POST", "/api/login", as_json, own)[0] == 200


def test_a_state_change_with_the_cookie_from_another_site_or_not_as_json_is_refused(stack):
    user = stack.add_user(f"{RUN}.cookie", "traffic_police", "clerk")
    status, body, headers = sign_in(stack, "127.0.7.1", user, TEST_PASSWORD)
    session = {"Cookie": headers["Set-Cookie"].split(";", 1)[0], "X-CSRF-Token": body["csrf"]}
    for extra in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        status, body, _ = call(stack, "127.0.7.1", "POST", "/api/logout", {}, {**session, **extra})
        assert status == 403 and "another site" in body["error"], (extra, body)
    status, body, _ = call(stack, "127.0.7.1", "POST", "/api/logout", b"{}", {**session, "Content-Type": "text/plain"})
    assert status == 415, body
    assert call(stack, "127.0.7.1", "GET", "/api/district", headers=session)[0] == 200  # still signed in
    status, body, _ = call(stack, "127.0.7.1", "POST", "/api/logout", {}, {**session, "Origin": stack.worker.url})
    assert (status, body) == (200, {"signed_out": True})


def soc_users(stack: Pipeline, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([*soc_command(), "users", *args], input=stdin, capture_output=True, text=True,
                          env=stack.stack.env(), timeout=60)


def test_a_password_with_spaces_given_at_the_shell_signs_in_over_http_byte_for_byte(stack):
    user, password = f"{RUN}.spaces", "  two words and spaces  "
    added = soc_users(stack, "add", user, "--department", "traffic_police", "--role", "clerk", "--password-stdin",
                      stdin=password + "\n")
    assert added.returncode == 0, added.stderr
    assert sign_in(stack, "127.0.8.1", user, password.strip())[0] == 401
    assert sign_in(stack, "127.0.8.2", user, password)[0] == 200


BAD_IDS = ["Bad Name", "<img src=x onerror=alert(1)>", "x:session:abc", "a" * 33, "a" * 62]


@pytest.mark.parametrize("user_id", BAD_IDS)
def test_a_user_id_is_matched_whole_with_the_same_words_over_http_and_at_the_shell(stack, user_id):
    admin = stack.user_token(stack.add_user(f"{RUN}.admin{BAD_IDS.index(user_id)}", "ops_centre", "admin"))
    status, body, _ = call(stack, "127.0.9.1", "POST", "/api/users", {
        "user_id": user_id, "name": "某人", "department": "traffic_police", "role": "clerk",
        "password": TEST_PASSWORD}, bearer(admin))
    assert (status, body) == (422, {"error": "invalid body", "fields": [{"loc": "user_id", "msg": USER_ID_RULE}]})
    shell = soc_users(stack, "add", user_id, "--department", "traffic_police", "--role", "clerk")
    assert shell.returncode == 2 and shell.stderr.strip() == f"soc users add: {USER_ID_RULE}", shell.stderr
    listed = call(stack, "127.0.9.1", "GET", "/api/users", headers=bearer(admin))[1]["users"]
    assert user_id not in {u["user_id"] for u in listed}


def test_the_longest_user_id_is_made_and_disabled_over_http(stack):
    admin = stack.user_token(stack.add_user(f"{RUN}.admin", "ops_centre", "admin"))
    user_id = f"{RUN}." + "x" * (32 - len(RUN) - 1)
    assert len(user_id) == 32
    status, body, _ = call(stack, "127.0.9.2", "POST", "/api/users", {
        "user_id": user_id, "name": "某人", "department": "traffic_police", "role": "clerk",
        "password": TEST_PASSWORD}, bearer(admin))
    assert status == 201, body
    status, body, _ = call(stack, "127.0.9.2", "POST", f"/api/users/{user_id}/disable", {}, bearer(admin))
    assert status == 200 and body["disabled"] is True, body
