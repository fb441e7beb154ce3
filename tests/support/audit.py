"""Reading the API's audit log back (`api.audit.AuditLog` writes one JSON object a line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_audit_log(path: Path) -> list[dict[str, Any]]:
    """Every entry, oldest first."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
