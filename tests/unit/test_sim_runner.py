"""`soc simulate` refuses to start, with a reason and an exit code scripts can tell apart, before it sends
anything: a bad volume is a usage error (2), a broken config directory is reported line by line (1)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from schemas.config import ConfigError
from streams.ops.cli import main as soc
from streams.ops.sim_runner import BadVolume, run


def test_a_rate_or_intensity_that_is_not_positive_is_refused() -> None:
    settings = SimpleNamespace(config_dir="unused")
    with pytest.raises(BadVolume, match="--rate"):
        run(settings, rate=0)
    with pytest.raises(BadVolume, match="--intensity"):
        run(settings, intensity=0)


def test_a_config_directory_without_its_files_raises_every_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        run(SimpleNamespace(config_dir=tmp_path), rate=10)
    assert any("district.yaml" in line for line in caught.value.errors), caught.value.errors


def test_the_command_exits_2_for_a_bad_volume_and_1_for_a_bad_config(tmp_path, monkeypatch, capsys) -> None:
    assert soc(["simulate", "--rate", "0"]) == 2
    assert "--rate must be positive" in capsys.readouterr().err
    monkeypatch.setenv("SOC_CONFIG_DIR", str(tmp_path))
    assert soc(["simulate", "--rate", "10"]) == 1
    assert "district.yaml" in capsys.readouterr().err
