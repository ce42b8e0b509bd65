"""`dermedge stream`: where the events of `edge_runtime.stream` go, and the preview and recording
around the loop. The screening itself (gate, models, alerts, retries) is all in `edge_runtime`.

Headless first (a Raspberry Pi has no screen): events go to stdout as JSON lines (or short text
lines for a person watching a terminal) and/or a JSONL file, flushed line by line so `tail -f` and
pipes see them as they happen.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, TextIO

from rich.console import Console

from dermedge.errors import DermedgeError
from edge_runtime.capture import SourceError, open_source
from edge_runtime.pipeline import Pipeline
from edge_runtime.stream import Preview, StreamConfig, VideoRecorder, run_stream

STDOUT_FORMATS = ("json", "text", "none")


def _counts(counts: dict) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in counts.items())


def format_text(event: dict) -> str:
    """One event as a line (the summary as a few) for people; JSON is the format for programs."""
    kind = event["type"]
    if kind == "frame":
        head = f"frame {event['frame']:>6}  "
        if event["status"] == "rejected":
            line = head + f"not analysed: {event['reason']} ({event['hint']})"
        else:
            line = (head + f"{event['label']} {event['confidence']:.0%}  malignant {event['malignant_probability']:.2f}"
                    f"  | lesion {event['lesion']}: smoothed {event['smoothed_malignant_probability']:.2f}, "
                    f"{event['above']}/{event['window']} frames above threshold")
        since = event.get("rejected_since_last")
        if since:
            line += f"  [rejected since last line: {_counts(since)}]"
        return line
    if kind == "alert":
        return (f"ALERT  frame {event['frame']}: REFER lesion {event['lesion']} ({event['label']}, smoothed malignant "
                f"{event['malignant_probability']:.2f}; {event['above']} of the last {event['n']} good frames >= "
                f"{event['threshold']:.2f})")
    if kind == "lesion":
        line = (f"lesion {event['lesion']} ended: frames {event['first_frame']}-{event['last_frame']} "
                f"({event['good_frames']} analysed, began: {event['started_by']}): {event['decision']}, "
                f"smoothed {event['label']} malignant {event['malignant_probability']:.2f}")
        best = event.get("best_frame")
        if best:
            line += f"; sharpest frame {best['frame']}" + (f" saved to {best['path']}" if best.get("path") else "")
        return line
    if kind == "source":
        if event["status"] == "retrying":
            return (f"{event['source']}: no frame, retry {event['attempt']}/{event['of']} in {event['delay_s']:g} s"
                    + (f" ({event['error']})" if event.get("error") else ""))
        return f"{event['source']}: frames again after {event['attempt']} retr{'y' if event['attempt'] == 1 else 'ies'}"
    if kind == "summary":
        decision = event["decision"]
        latency = event["latency_ms"] or {"p50": float("nan"), "p90": float("nan")}
        lines = [f"summary: {event['ended']}; {event['frames']} frames, {event['analysed']} analysed "
                 f"({event['fps']['analysed']:.1f}/s), {event['rejected_total']} rejected, {event['dropped']} dropped",
                 f"  capture-to-event latency p50 {latency['p50']:.1f} ms, p90 {latency['p90']:.1f} ms",
                 f"  decision: {decision['result']} ({decision['lesions_seen']} lesion(s) seen, "
                 f"{decision['alerts']} alert(s))"]
        if event["rejected"]:
            lines.insert(1, f"  rejected: {_counts(event['rejected'])}")
        best = event.get("best_frame")
        if best and best.get("path"):
            path = Path(best["path"])
            lines.append(f"  sharpest analysed frame ({best['frame']}, lesion {best['lesion']}) saved to {path}; "
                         f"each lesion's sharpest beside it as {path.stem}.lesion<id>{path.suffix}")
        return "\n".join(lines)
    return json.dumps(event)


def best_frame_path(best: Path | None, jsonl: Path | None) -> Path | None:
    """Where the sharpest frame goes: `--best`, else beside the `--jsonl` events (`events.jsonl` ->
    `events.best.jpg`), else nowhere. Never into the current folder unasked. Each lesion's sharpest
    frame goes beside it (`events.best.lesion1.jpg`, see `edge_runtime.stream.lesion_image_path`)."""
    if best is not None:
        return best
    if jsonl is not None:
        return jsonl.with_name(f"{jsonl.stem}.best.jpg")
    return None


def _event_writer(stdout_format: str, jsonl: TextIO | None) -> Callable[[dict], None]:
    def write(event: dict) -> None:
        line = json.dumps(event)
        if jsonl is not None:
            jsonl.write(line + "\n")
            jsonl.flush()
        if stdout_format == "json":
            sys.stdout.write(line + "\n")
        elif stdout_format == "text":
            sys.stdout.write(format_text(event) + "\n")
        sys.stdout.flush()

    return write


def screen(pipeline: Pipeline, source: str, config: StreamConfig, console: Console, jsonl: Path | None = None,
           stdout_format: str = "json", show: bool = False, record: Path | None = None) -> dict:
    """Open the source and the outputs, run the stream, close everything; returns the summary."""
    if stdout_format not in STDOUT_FORMATS:
        raise DermedgeError(f"--stdout is one of {', '.join(STDOUT_FORMATS)}, got {stdout_format!r}")
    try:
        frames = open_source(source)
    except SourceError as exc:
        raise DermedgeError(str(exc)) from None
    preview = recorder = None
    if show:
        try:
            preview = Preview()
        except SourceError as exc:
            console.print(f"[yellow]--show: {exc}; carrying on headless[/]", highlight=False, soft_wrap=True)
    if record:
        recorder = VideoRecorder(record, config.max_fps or frames.fps or 30.0)

    def on_frame(image) -> bool:
        if recorder is not None:
            recorder(image)
        return preview(image) if preview is not None else True

    jsonl_file = None
    try:
        if jsonl:
            jsonl.parent.mkdir(parents=True, exist_ok=True)
            jsonl_file = open(jsonl, "w")
        mode = "paced at the file's fps" if config.pace and not frames.live else (
            "newest frame wins" if frames.live else "every frame, as fast as possible")
        console.print(f"screening {frames.name} ({mode}); Ctrl-C to stop", highlight=False, soft_wrap=True)
        return run_stream(pipeline, frames, config, _event_writer(stdout_format, jsonl_file),
                          on_frame if (preview or recorder) else None)
    except SourceError as exc:
        raise DermedgeError(str(exc)) from None
    finally:
        for closable in (jsonl_file, recorder, preview):
            if closable is not None:
                closable.close()
