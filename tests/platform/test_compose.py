"""docker-compose.yml is validated against the Compose specification schema (no Docker engine here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.platform.search_attributes import ALL_KEYS

ROOT = Path(__file__).resolve().parents[2]
CHECK = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CHECK, str(path)], capture_output=True, text=True, check=False)


def test_compose_file_matches_the_compose_specification() -> None:
    result = validate(ROOT / "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  api:\n    image: x\n    depends_on:\n      db:\n        condition: sometimes\n")
    assert validate(broken).returncode != 0


def test_compose_stack_shape() -> None:
    import yaml

    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"postgres", "temporal", "temporal-ui", "api", "worker"} <= set(services)
    assert "auto-setup" not in services["temporal"]["image"]
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert services["api"]["build"] == services["worker"]["build"] == "."
    for name in ("postgres", "temporal", "api"):
        assert "healthcheck" in services[name], name
    assert services["api"]["depends_on"]["temporal-setup"]["condition"] == "service_completed_successfully"
    setup = " ".join(services["temporal-setup"]["command"])
    for key in ALL_KEYS:
        assert key.name in setup
