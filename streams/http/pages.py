"""The pages people open: one shell (templates/shell.html: the head, the top bar with the language toggle and
who is signed in, the error and notice banners, the sign-in form) around each page's own parts
(templates/<page>.html). A page file is a list of slots, each opened by a line `<!-- slot: name -->`; text
before the first slot describes the page and is not served."""
from __future__ import annotations

import re
from pathlib import Path
from string import Template

from aiohttp import web as aioweb

TEMPLATES = Path(__file__).parent / "templates"
SLOT = re.compile(r"^<!-- slot: (\w+) -->\n", re.MULTILINE)
LANG_TOGGLE = '      <button type="button" id="lang" class="ghost" title="中文 / English">EN</button>\n'
# Every slot a page may fill, and what the shell holds when it does not.
DEFAULTS = {"title": "", "body_class": "", "head": '  <link rel="icon" href="data:,">\n', "styles": "",
            "scripts": "", "heading": "", "status": "", "banners": "", "signin_heading": "", "signin_more": "",
            "signin_after": "", "main": "",
            "chrome": "",      # "noprint": the top bar and banners stay off paper (a report page)
            "languages": ""}   # "zh": a page in Chinese only, without the language toggle
SCALARS = {"title", "body_class", "heading", "signin_heading", "chrome", "languages"}


def slots(text: str) -> dict[str, str]:
    """A page file's slots by name; each block ends with its newline, a scalar is one stripped line."""
    parts = SLOT.split(text)[1:]
    found = {}
    for name, value in zip(parts[::2], parts[1::2]):
        if name not in DEFAULTS or name in found:
            raise ValueError(f"slot {name!r} is unknown or given twice")
        found[name] = value.strip() if name in SCALARS else value.rstrip("\n") + "\n"
    return found


def render(name: str) -> str:
    """The whole page `name` , read from its files on each request like the static files."""
    own = {**DEFAULTS, **slots((TEMPLATES / f"{name}.html").read_text(encoding="utf-8"))}
    shell = Template((TEMPLATES / "shell.html").read_text(encoding="utf-8"))
    return shell.substitute(
        own, chrome=f" {own['chrome']}" if own["chrome"] else "",
        lang="" if own["languages"] == "zh" else LANG_TOGGLE)


def page(name: str) -> aioweb.Response:
    return aioweb.Response(text=render(name), content_type="text/html", charset="utf-8",
                           headers={"Cache-Control": "no-cache"})
