"""`soc worker` refuses to start without the operations centre's API token (issue 17, item 4):
otherwise it would answer 401 to everyone and nobody could use the board."""
import argparse

from schemas.config import load_config
from streams.ops import cli
from tests.unit.conftest import CONFIG_DIR

CENTRE_TOKEN_ENV = load_config(CONFIG_DIR).district.departments["ops_centre"].token_env


def test_a_worker_without_the_centres_token_exits_78_and_says_why(monkeypatch, capsys):
    monkeypatch.delenv(CENTRE_TOKEN_ENV, raising=False)
    monkeypatch.setenv("SOC_CONFIG_DIR", str(CONFIG_DIR))
    assert cli.cmd_worker(argparse.Namespace()) == cli.NO_CREDENTIALS_EXIT_CODE == 78
    assert capsys.readouterr().err.startswith(f"no API credentials: {CENTRE_TOKEN_ENV} ")


def test_with_the_token_set_nothing_is_missing(monkeypatch):
    monkeypatch.setenv(CENTRE_TOKEN_ENV, "a-token")
    monkeypatch.setenv("SOC_CONFIG_DIR", str(CONFIG_DIR))
    from streams.settings import Settings
    assert cli.missing_credentials(Settings()) is None
    monkeypatch.setenv(CENTRE_TOKEN_ENV, "  ")
    assert cli.missing_credentials(Settings()) is not None
