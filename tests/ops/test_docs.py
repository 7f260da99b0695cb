"""The documentation: the MkDocs site builds strictly (a dead link or anchor fails it), and README.md stays a
short front door whose links all lead to files in this repository."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_the_docs_site_builds_strictly_with_every_page_in_the_nav(tmp_path):
    done = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    for page in ("architecture", "api", "operations/runbooks", "operations/settings", "performance"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page


def test_a_dead_link_in_the_docs_fails_the_build(tmp_path):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    assert re.search(r"^strict: true$", (ROOT / "mkdocs.yml").read_text(), re.M)
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "api.md"
    page.write_text(page.read_text() + "\nSee [the old design](../shared/design.md).\n")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "shared/design.md" in done.stdout + done.stderr


def test_the_readme_is_a_short_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 160
    assert "shared/design.md" not in readme
    for heading in ("## The two commands", "## Where next", "## Security: limits, throttles and personal data"):
        assert heading in readme, heading
    assert ". .venv/bin/activate" in readme and ".venv/bin/soc" in readme


def test_every_relative_link_of_the_readmes_leads_to_a_file_here():
    for readme in (ROOT / "README.md", ROOT / "deploy" / "README.md"):
        for target in LINK.findall(readme.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (readme.parent / target.split("#", 1)[0]).resolve()
            assert path.is_relative_to(ROOT) and path.exists(), f"{readme.relative_to(ROOT)}: {target}"
