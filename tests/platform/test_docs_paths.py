"""Every file path the docs and the docstrings name exists, so a reader following one never lands
nowhere (issue 21: six pointed nowhere). Pure: reads the tree, starts nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP = ("core", "api", "workflows", "activities", "tests", "docs", "scripts", "bench", "migrations", "packs")
# A repository path as prose names it: a top-level folder, then folders, then a file with an extension.
PATH = re.compile(
    rf"(?<![\w./-])((?:{'|'.join(TOP)})/[\w./-]*\w\.(?:py|md|json|toml|html|css|js|png|txt|yaml|yml|sh))\b"
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
CODE_DIRS = ("core", "api", "workflows", "activities", "scripts", "bench", "migrations", "tests")


def _docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _sources() -> list[Path]:
    found = [ROOT / "worker.py"]
    for folder in CODE_DIRS:
        found.extend(p for p in sorted((ROOT / folder).rglob("*.py")) if "__pycache__" not in p.parts)
    return found


def _missing_paths(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [f"{path.relative_to(ROOT)}: {name}" for name in PATH.findall(text) if not (ROOT / name).exists()]


def test_every_path_named_in_the_docs_and_the_code_exists() -> None:
    missing = [m for p in [*_docs(), *_sources()] for m in _missing_paths(p)]
    assert not missing, "paths that point nowhere:\n" + "\n".join(missing)


def test_every_relative_link_in_the_docs_resolves() -> None:
    broken = []
    for doc in _docs():
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):
                continue  # http(s):, mailto:
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, "links that point nowhere:\n" + "\n".join(broken)


def test_the_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; the rest belongs in docs/"
