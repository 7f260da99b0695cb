"""The pages from one shell (streams/http/pages.py): each page is whole, its ids are its own, and nothing in
it needs what the Content-Security-Policy forbids (inline scripts, scripts from elsewhere)."""
from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser

import pytest

from streams.http import pages

PAGES = sorted(p.stem for p in pages.TEMPLATES.glob("*.html") if p.stem != "shell")


class Reader(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.scripts, self.inline, self.handlers = Counter(), [], [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids[attrs["id"]] += 1
        self.handlers += [name for name in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append(attrs)
            self._in_script = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append(data)


def read(name: str) -> Reader:
    reader = Reader()
    reader.feed(pages.render(name))
    return reader


def test_every_page_is_there():
    assert PAGES == ["board", "daily", "inbox", "reviews", "sites", "stats"]


@pytest.mark.parametrize("name", PAGES)
def test_a_page_has_the_shell_once_and_its_own_parts(name):
    page = read(name)
    for shared in ("error", "notice", "signin", "signin-form", "user", "password", "who", "signout", "main"):
        assert page.ids[shared] == 1, (name, shared)
    assert [i for i, n in page.ids.items() if n > 1] == []
    assert page.ids["lang"] == (0 if name == "sites" else 1)   # the site page is in Chinese only
    html = pages.render(name)
    assert f'class="page-{"daily" if name == "reviews" else name}' in html
    assert "$" not in html.split("<body", 1)[0]   # every slot of the shell filled


@pytest.mark.parametrize("name", PAGES)
def test_a_page_runs_only_scripts_from_its_own_origin(name):
    page = read(name)
    assert page.inline == [] and page.handlers == []
    assert page.scripts[0]["src"] == "/static/common.js"
    assert all(s["src"].startswith("/static/") for s in page.scripts)


def test_the_report_pages_keep_their_top_bar_off_paper():
    for name in PAGES:
        assert ('class="topbar noprint"' in pages.render(name)) == (name in ("daily", "reviews")), name


def test_a_slot_the_shell_does_not_have_is_refused():
    with pytest.raises(ValueError, match="footer"):
        pages.slots("<!-- slot: title -->\nx\n<!-- slot: footer -->\n<p></p>\n")
