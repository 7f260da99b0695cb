"""`soc users` against the running stack, as an operator uses it: the users it makes sign in, the
changes it makes are in the audit trail under the operator's login, and a mistake is a message, not a
traceback."""
from __future__ import annotations

import subprocess
import uuid

import pytest

from streams.ops.devstack import soc_command
from tests.support import TEST_PASSWORD, poll

pytestmark = pytest.mark.integration


def soc_users(pipeline, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([*soc_command(), "users", *args], input=stdin, capture_output=True, text=True,
                          env=pipeline.stack.env(), timeout=60)


def test_an_operator_adds_resets_and_disables_a_user_and_the_trail_names_them(pipeline):
    name = f"cli.{uuid.uuid4().hex[:6]}"
    added = soc_users(pipeline, "add", name, "--name", "王芳", "--department", "traffic_police", "--role", "clerk",
                      "--password-stdin", stdin=TEST_PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert f"added {name} (王芳, traffic_police, clerk)" in added.stdout and "warning" not in added.stderr
    listed = soc_users(pipeline, "list")
    assert any(line.split()[:4] == [name, "王芳", "traffic_police", "clerk"] for line in listed.stdout.splitlines())
    assert pipeline.sign_in(name)  # the password given on stdin

    token = soc_users(pipeline, "token", name).stdout.strip().splitlines()[-1]
    assert token.startswith("socu_")
    assert pipeline.get("/api/tickets?limit=1", token=token)[0] == 200

    reset = soc_users(pipeline, "reset", name)
    new_password = reset.stdout.split("password (shown once): ")[1].strip()
    assert pipeline.raw_request("POST", "/api/login", {"user": name, "password": TEST_PASSWORD})[0] == 401
    assert pipeline.sign_in(name, new_password)

    assert soc_users(pipeline, "disable", name).returncode == 0
    assert pipeline.get("/api/tickets?limit=1", token=token)[0] == 401

    admin = pipeline.add_user(f"admin.{uuid.uuid4().hex[:6]}", "ops_centre", "admin")
    headers = pipeline.sign_in(admin)

    def trail() -> list[dict]:
        status, body = pipeline.get("/api/audit?what=users&limit=500", headers=headers)
        assert status == 200, body
        return [r for r in body["records"] if r["target"] == name]

    records = poll(lambda: len(trail()) >= 4 and trail(), 30, "the CLI's changes in the audit trail")
    assert sorted(r["what"] for r in records) == ["users.add", "users.disable", "users.reset", "users.token"]
    assert all(r["actor"]["user_id"].startswith("shell:") and r["remote"] == "cli" for r in records)
    assert TEST_PASSWORD not in str(records) and new_password not in str(records) and token not in str(records)


@pytest.mark.parametrize("args, message", [
    (("add", "x.dup", "--department", "ops_centre", "--role", "clerk"),
     "soc users add: ops_centre has duty officers and leaders, not clerks"),
    (("add", "x.short", "--department", "traffic_police", "--role", "clerk", "--password-stdin"),
     "soc users add: a password has at least 10 characters"),
    (("disable", "nobody.here"), "soc users disable: no user nobody.here"),
    (("reset", "nobody.here"), "soc users reset: no user nobody.here"),
])
def test_a_mistake_is_one_line_and_exit_code_2(pipeline, args, message):
    done = soc_users(pipeline, *args, stdin="short\n")
    assert done.returncode == 2 and done.stderr.strip() == message, done.stderr
