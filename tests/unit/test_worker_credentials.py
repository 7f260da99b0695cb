"""Whether `soc worker` may start: someone must be able to act for the operations centre, a person in the
account store (an active duty officer, or an admin who can add one) or the centre's service token.
Otherwise it exits 78 and says how to add someone; it would answer 401 to everyone."""
from datetime import datetime, timezone

import pytest

from schemas.accounts import User, UserRole
from schemas.config import load_config
from streams.ops import cli
from tests.unit.conftest import CONFIG_DIR

CONFIG = load_config(CONFIG_DIR)
CENTRE_TOKEN_ENV = CONFIG.district.departments["ops_centre"].token_env
AT = datetime(2026, 12, 1, tzinfo=timezone.utc)


def user(role: UserRole, department: str = "ops_centre", disabled: bool = False) -> User:
    return User(user_id=f"u.{role.value}", name="某人", department=department, role=role, disabled=disabled,
                password_hash="$argon2id$not-checked-here", created_at=AT, password_changed_at=AT)


def refusal(environ: dict[str, str], users: list[User]) -> str | None:
    return cli.missing_credentials(CONFIG, environ, users, "soc-prod")


def test_with_neither_a_person_nor_the_centres_token_the_reason_says_how_to_add_one():
    why = refusal({}, [])
    assert why == ("运行中心无人可用：没有在用的值班员或管理员账号，也没有设置 SOC_TOKEN_OPS_CENTRE "
                   "(no person and no service credential can act for ops_centre: no active duty officer or admin "
                   "in Redis under soc-prod, and SOC_TOKEN_OPS_CENTRE is not set). Add a duty officer with "
                   "`soc users add NAME --name 姓名 --department ops_centre --role duty_officer` "
                   "(same SOC_REDIS_URL and SOC_REDIS_PREFIX), or set SOC_TOKEN_OPS_CENTRE.")
    assert cli.NO_CREDENTIALS_EXIT_CODE == 78
    # A token of blanks is no token.
    assert refusal({CENTRE_TOKEN_ENV: "  "}, []) == why


@pytest.mark.parametrize("people", [
    [user(UserRole.duty_officer)],
    [user(UserRole.admin)],
    [user(UserRole.admin, department="traffic_police")],   # an admin of any department adds the officers
    [user(UserRole.duty_officer, disabled=True), user(UserRole.admin)],
], ids=["duty_officer", "admin", "admin_elsewhere", "one_active_of_two"])
def test_an_active_duty_officer_or_admin_is_enough_without_the_token(people):
    assert refusal({}, people) is None


@pytest.mark.parametrize("people", [
    [user(UserRole.duty_officer, disabled=True)],
    [user(UserRole.clerk, department="traffic_police"), user(UserRole.supervisor, department="traffic_police")],
    [user(UserRole.leader, department="district_leadership")],
], ids=["disabled_officer", "clerks_only", "leader_only"])
def test_people_who_cannot_act_for_the_centre_do_not_count(people):
    assert refusal({}, people) is not None


def test_the_centres_service_token_is_enough_without_any_person():
    assert refusal({CENTRE_TOKEN_ENV: "a-token"}, []) is None
