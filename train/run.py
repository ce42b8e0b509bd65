"""The run directory: everything needed to trust, reproduce or reuse a training run."""

from __future__ import annotations

import dataclasses
import json
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

from dermedge import __version__


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def start_run(out: Path, config) -> Path:
    """Create the run folder and record the config and the exact command line."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = dataclasses.asdict(config)
    record["command"] = shlex.join(["dermedge", *sys.argv[1:]]) if sys.argv[0].endswith("dermedge") else shlex.join(sys.argv)
    record["started"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record["dermedge_version"] = __version__
    record["python"] = platform.python_version()
    write_json(out / "config.json", record)
    return out


def save_history(out: Path, history: dict, title: str, kept: tuple[int, int] | None = None) -> None:
    """history.json and training_curves.png; `kept` (first, last epoch, 1-based) marks the
    epochs the saved model comes from."""
    from dermedge.reports import plot_history

    clean = {k: [float(v) for v in values] for k, values in history.items()}
    write_json(out / "history.json", clean)
    plot_history(clean, out / "training_curves.png", title, kept)


def restored_epoch(stop) -> tuple[int, int] | None:
    """(epoch, epoch), 1-based, that a Keras EarlyStopping with restore_best_weights put back."""
    if not stop.restore_best_weights or stop.best_weights is None:
        return None
    return stop.best_epoch + 1, stop.best_epoch + 1
