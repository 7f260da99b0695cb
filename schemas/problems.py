"""How a config file's problems are reported: `ConfigError` lists every problem found, one line each,
naming the file and the path inside it (`error_path`). Shared by schemas/config.py and the files it
checks against the loaded config (schemas/geo.py), which must not import each other both ways."""
from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


def error_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error's location as a dotted path ('duty.rotations.0.start'), '(top)' for the whole file."""
    return ".".join(str(part) for part in loc) or "(top)"
