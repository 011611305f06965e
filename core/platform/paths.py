"""Where the project's own files are: packs (template and definition data), migrations, alembic.ini."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKS_DIR = PROJECT_ROOT / "packs"
