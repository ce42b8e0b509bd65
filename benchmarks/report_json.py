"""The one ending of the benchmark scripts: the result as JSON on stdout and, with --json, in a file."""

from __future__ import annotations

import json
from pathlib import Path


def emit(report: dict, path: Path | None) -> None:
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
