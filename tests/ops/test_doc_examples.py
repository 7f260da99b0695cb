"""The shell examples in README.md and docs/ that talk to a running stack work when copied: each page's blocks
marked `<!-- example: stack -->` run in order, in one bash, against a `soc dev` started as the docs say, from a
directory that looks like the repository's root to them (.venv, deploy, tests), with the venv first on PATH.
A line `# → text` in a block is output the page shows: it must appear in what the page's blocks printed."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from streams.ops.devstack import Process, free_port, soc_command, wait_for
from streams.settings import REPO_ROOT

pytestmark = pytest.mark.integration

MARK = "<!-- example: stack -->"
# The marker on its own line, then a fenced sh/bash/console block: GitHub and MkDocs show the block, not the marker.
BLOCK = re.compile(r"^" + re.escape(MARK) + r"\n```(?:sh|bash|console)\n(.*?)^```$", re.M | re.S)
SHOWN = re.compile(r"^\s*#\s*→\s*(.+?)\s*$", re.M)
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
# What the examples expect to find in the directory they run in (the repository's root).
SHARED = (".venv", "deploy", "tests")
PAGE_DEADLINE_S = 120


def examples(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


MARKED = [page for page in PAGES if examples(page)]


def test_the_marker_is_only_ever_followed_by_a_shell_block():
    """A marker before anything else (a typo'd fence, a blank line) would silently leave its block untested."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert text.count(MARK) == len(examples(page)), page.relative_to(REPO_ROOT)


@pytest.fixture(scope="module")
def dev_root(tmp_path_factory):
    """`soc dev` (what `make run` runs) on a free port, started in a directory standing in for the repository's
    root; it writes soc-dev.env there, which the examples source."""
    root = tmp_path_factory.mktemp("repo")
    for name in SHARED:
        (root / name).symlink_to(REPO_ROOT / name)
    env = {**os.environ, "PATH": f"{REPO_ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in [n for n in env if n.startswith("SOC_")]:
        del env[name]  # the stack's settings come from soc-dev.env, as a reader's would
    log_dir = root.parent / f"{root.name}-logs"
    log_dir.mkdir()
    # Every curl in the examples fails on a 4xx or 5xx, printing the refusal: an example's exit code says
    # whether the call it shows worked, not only whether the server answered.
    (log_dir / ".curlrc").write_text("fail-with-body\n")
    env["CURL_HOME"] = str(log_dir)
    dev = Process("soc-dev", subprocess.Popen([*soc_command(), "dev", "--port", str(free_port())], cwd=root, env=env,
                                              stdout=(log_dir / "dev.log").open("wb"), stderr=subprocess.STDOUT,
                                              start_new_session=True), log_dir / "dev.log")
    try:
        wait_for(lambda: dev.popen.poll() is not None or b"Ctrl-C stops everything" in dev.log_path.read_bytes(),
                 240, "soc dev to print its sign-ins")
        assert dev.popen.poll() is None, dev.log_path.read_text(errors="replace")
        yield root, env
    finally:
        dev.stop(30)
    assert not (root / "soc-dev.env").exists()  # soc dev removes it on the way out


@pytest.mark.parametrize("page", MARKED, ids=[str(p.relative_to(REPO_ROOT)) for p in MARKED])
def test_the_pages_examples_run_against_soc_dev(page, dev_root):
    root, env = dev_root
    script = "set -euo pipefail\n" + "\n".join(examples(page))
    done = subprocess.run(["bash", "-c", script], cwd=root, env=env, capture_output=True, text=True,
                          timeout=PAGE_DEADLINE_S)
    shown = f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, shown
    for expected in SHOWN.findall(script):
        assert expected in done.stdout, f"{expected!r} not printed\n{shown}"
