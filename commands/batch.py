"""Running the pipeline over many files: one loop for `predict` and `evaluate`.

A file that cannot be read is reported with its reason and skipped; the batch goes on. The
progress bar goes to stderr so `--json -` style output on stdout stays clean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edge_runtime.image_io import ImageError, read_image
from edge_runtime.pipeline import Pipeline, Result


@dataclass
class Skipped:
    """Files a batch could not use, with why: reported at the end, never silently dropped.

    `keep` bounds the files held (the first ones; `len` still counts all) for a batch whose outputs
    already record each skipped file as it comes (`predict` gives `on_add`)."""

    files: list[tuple[str, str]] = field(default_factory=list)
    # Told of each file as it is skipped (`predict --jsonl` records it at once), if set.
    on_add: Callable[[str, str], None] | None = field(default=None, repr=False, compare=False)
    keep: int | None = None
    dropped: int = 0  # skipped files beyond `keep`: counted, not held

    def add(self, path: Path | str, reason: str) -> None:
        if self.keep is None or len(self.files) < self.keep:
            self.files.append((str(path), reason))
        else:
            self.dropped += 1
        if self.on_add is not None:
            self.on_add(str(path), reason)

    def __len__(self) -> int:
        return len(self.files) + self.dropped

    def as_list(self) -> list[dict]:
        return [{"path": path, "error": reason} for path, reason in self.files]

    def report(self, console: Console, limit: int = 20) -> None:
        for path, reason in self.files[:limit]:
            console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False, soft_wrap=True)
        if len(self) > limit:
            console.print(f"[yellow]... and {len(self) - limit} more skipped files[/]")


def stdout_console() -> Console:
    """Results go to stdout; wide when piped to a file, so tables stay readable in logs."""
    return Console(width=None if Console().is_terminal else 180)


def progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console, transient=True)


def run_pipeline(pipeline: Pipeline, paths: list[Path], skipped: Skipped, console: Console,
                 description: str = "analysing") -> Iterator[tuple[Path, "object", Result]]:
    """Yield (path, RGB image, Result) for every readable file; unreadable ones go to `skipped`."""
    with progress_bar(console) as progress:
        task = progress.add_task(description, total=len(paths))
        for path in paths:
            try:
                image = read_image(path, pipeline.max_pixels)
                result = pipeline.predict(image)
            except ImageError as exc:
                skipped.add(path, str(exc))
            else:
                yield path, image, result
            finally:
                progress.advance(task)
