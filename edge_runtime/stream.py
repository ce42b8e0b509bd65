"""Live screening: camera frames through the quality gate, the pipeline and the alert policy, as events.

One loop (`run_stream`) for the `dermedge stream` command, the tests and the benchmark. Capture
runs beside it (see `capture.py`); each frame the loop takes goes through
  exposure + focus gate -> segmenter -> lesion gate -> classifier -> lesion tracker + aggregator,
stopping at the first gate it fails, so a rejected frame never costs the classifier. The tracker
(`alerts.py`) cuts the stream into lesions: a new one begins when the view changes or after a stretch
without a usable lesion, and the K-of-N vote, the smoothed answer and the sharpest frame are per
lesion. What comes out is a stream of plain dicts, one JSON object each:
- `frame`: one per analysed or rejected frame, rate-limited by `frame_every` (with the rejections
  since the last one, so a rate-limited stream still says why frames were unusable); analysed frames
  carry their lesion id and how they compared with the previous good frame (`change`);
- `alert`: the alert policy said "refer" for a lesion (never rate-limited);
- `lesion`: a lesion ended (the view moved on, a gap, or the end of the run): its frames, why it
  began, its decision and its sharpest frame (never rate-limited);
- `source`: a live source is being retried, or came back;
- `summary`: last, always, however the run ended (end of file, Ctrl-C, camera gone).
The callers only route and format them.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from queue import Empty
from typing import Callable

import cv2
import numpy as np

from edge_runtime.alerts import AlertPolicy, LesionAggregator, LesionTrack, TrackingThresholds, Update, appearance
from edge_runtime.capture import Backoff, Capture, Frame, FrameSource, LatestFrameSlot, SourceError
from edge_runtime.overlay import BENIGN_COLOUR, MALIGNANT_COLOUR, draw_banner, draw_overlay, write_rgb
from edge_runtime.pipeline import Analysis, Pipeline
from edge_runtime.quality import HINTS, REASONS

REJECTED_COLOUR = (255, 200, 0)
LATENCY_WINDOW = 100_000  # latency percentiles are over the last frames this many (a day at 30 fps is 2.6 M)


@dataclass(frozen=True)
class StreamConfig:
    """How the loop runs around the pipeline; the quality gate's thresholds are the pipeline's own
    (`PipelineOptions.quality`), the same for `predict` and the stream."""

    alerts: AlertPolicy = AlertPolicy()  # threshold None: the bundle's malignant threshold
    max_fps: float | None = None  # analyse at most this many frames a second (the newest wins)
    pace: bool = False  # video files: play at the file's fps, dropping frames like a camera
    frame_every: float | None = 1.0  # seconds between `frame` events; 0: every frame; None: none
    backoff: Backoff = Backoff()
    # Where the sharpest analysed frame of the run is written with its overlay; each lesion's
    # sharpest frame goes beside it as <stem>.lesion<id><suffix> (best.jpg -> best.lesion3.jpg),
    # written when the lesion ends. None: nothing written (the summary still names the frames).
    best_frame: Path | None = None
    tracking: TrackingThresholds = TrackingThresholds()  # when a new lesion begins


def analyse(pipeline: Pipeline, image: np.ndarray) -> Analysis:
    """One frame as the stream screens it: `Pipeline.analyse` stopping at the first gate it fails,
    so a rejected frame never costs the classifier (nor, when the image gate fails, the segmenter)."""
    return pipeline.analyse(image, stop_at_gate=True)


def annotate(analysis: Analysis, update: Update | None, threshold: float) -> np.ndarray:
    """The frame as the preview and the recording show it: the overlay and the lesion's vote, or
    why the frame was not analysed."""
    if analysis.result is None:
        canvas = analysis.image.copy()
        return draw_banner(canvas, f"not analysed: {analysis.reason} - {HINTS[analysis.reason]}", REJECTED_COLOUR)
    canvas = draw_overlay(analysis.image, analysis.result)
    if update:
        text = (f"lesion {update.lesion}: {update.above}/{update.window} frames >= {threshold:.2f}, "
                f"smoothed {update.label} malignant {update.malignant_probability:.0%}")
        colour = MALIGNANT_COLOUR if update.malignant_probability >= threshold else BENIGN_COLOUR
        draw_banner(canvas, text, colour, line=1)
    return canvas


@contextmanager
def ctrl_c_sets(stop: threading.Event):
    """While inside, Ctrl-C asks the loop to stop between frames (a clean end with the summary)
    instead of raising in the middle of a model call; a second Ctrl-C raises as usual."""
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous is None or previous == signal.SIG_IGN:  # not ours to handle (a thread; nohup)
        yield
        return

    def handler(signum, frame):
        stop.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class LatencyWindow:
    """The last `size` latencies in a preallocated float32 ring: percentiles over a session of hours
    in memory fixed at the start (a deque of Python floats grew ~64 bytes a frame until it was full)."""

    def __init__(self, size: int = LATENCY_WINDOW):
        self.values = np.empty(size, np.float32)
        self.count = 0

    def append(self, ms: float) -> None:
        self.values[self.count % len(self.values)] = ms
        self.count += 1

    def percentiles(self) -> dict | None:
        if not self.count:
            return None
        p50, p90 = np.percentile(self.values[: min(self.count, len(self.values))], [50, 90])
        return {"p50": round(float(p50), 3), "p90": round(float(p90), 3)}


@dataclass
class _Tally:
    """What the summary counts, kept as the loop goes."""

    analysed: int = 0
    rejected: Counter = field(default_factory=Counter)
    rejected_since_event: Counter = field(default_factory=Counter)
    latency_ms: LatencyWindow = field(default_factory=LatencyWindow)  # capture -> event
    inference_ms: LatencyWindow = field(default_factory=LatencyWindow)  # taken -> event
    best: tuple | None = None  # (sharpness, frame index, Analysis, lesion id)
    # The same per lesion id, for the lesions not ended yet (the current one, and for a moment the
    # one it replaced): a long session holds one lesion's frame, not one per lesion.
    lesion_best: dict = field(default_factory=dict)
    last_frame_event: float | None = None


def run_stream(pipeline: Pipeline, source: FrameSource, config: StreamConfig = StreamConfig(),
               on_event: Callable[[dict], None] | None = None,
               on_frame: Callable[[np.ndarray], bool | None] | None = None, *,
               sleep: Callable[[float], None] | None = None, clock: Callable[[], float] = time.perf_counter) -> dict:
    """Screen `source` until it ends, fails for good, Ctrl-C, or `on_frame` returns False.

    `on_event` receives every event dict, the summary last, which is also returned. `on_frame`
    receives each analysed or rejected frame annotated (RGB), for a preview or a recording. `sleep`
    is what capture waits with between retries and when pacing (tests pass one that does not wait).
    The source is closed by the capture thread when it is done with it.
    """
    emit = on_event or (lambda event: None)
    policy = config.alerts
    if policy.threshold is None:
        policy = replace(policy, threshold=pipeline.malignant_threshold)
    aggregator = LesionAggregator(policy, pipeline.labels, config.tracking)
    slot = LatestFrameSlot()
    capture = Capture(source, slot, pace=config.pace, backoff=config.backoff, sleep=sleep, clock=clock)
    tally = _Tally()
    stop = threading.Event()
    ended = "end_of_stream"
    start = clock()
    with ctrl_c_sets(stop):
        capture.start()
        try:
            while not stop.is_set():
                _pass_on(capture, emit)
                frame = slot.take(timeout=0.1)
                if frame is None:
                    if slot.finished:
                        break
                    continue
                taken = clock()
                analysis, update, lesion_over = _screen(pipeline, frame, config, aggregator, tally)
                if lesion_over is not None:
                    _end_lesion(lesion_over, aggregator, config, tally, emit)
                done = clock()
                tally.latency_ms.append((done - frame.captured) * 1e3)
                tally.inference_ms.append((done - taken) * 1e3)
                _events(frame, analysis, update, done, start, config, tally, emit)
                if on_frame is not None and on_frame(annotate(analysis, update, policy.threshold)) is False:
                    ended = "stopped"
                    break
                if config.max_fps:
                    stop.wait(max(0.0, taken + 1.0 / config.max_fps - clock()))
        except KeyboardInterrupt:
            stop.set()
        finally:
            duration = max(clock() - start, 1e-9)  # the run, not the wait for capture to let go
            capture.stop()
            capture.join(timeout=2.0)
            slot.discard()
    _pass_on(capture, emit)
    last = aggregator.finish()
    if last is not None:
        _end_lesion(last, aggregator, config, tally, emit)
    error = None
    if stop.is_set():
        ended = "interrupted"
    elif capture.failure:
        ended, error = "source_failed", capture.failure
    elif capture.error is not None:
        ended, error = "source_error", f"{type(capture.error).__name__}: {capture.error}"
    summary = {
        "type": "summary",
        "ended": ended,
        "error": error,
        "source": getattr(source, "name", "frames"),
        "variant": pipeline.variant,
        "threads": pipeline.num_threads,
        "frames": slot.delivered,
        "analysed": tally.analysed,
        "rejected": {reason: tally.rejected[reason] for reason in REASONS if tally.rejected[reason]},
        "rejected_total": sum(tally.rejected.values()),
        "dropped": slot.dropped,
        "source_retries": capture.retries,
        "duration_s": round(duration, 3),
        "fps": {"analysed": round(tally.analysed / duration, 2), "frames": round(slot.delivered / duration, 2)},
        "latency_ms": tally.latency_ms.percentiles(),
        "inference_ms": tally.inference_ms.percentiles(),
        "alerts": aggregator.alerts,
        "decision": aggregator.decision(),
        "best_frame": _save_best(tally.best, config.best_frame),
    }
    emit(summary)
    return summary


def _pass_on(capture: Capture, emit) -> None:
    while True:
        try:
            emit(capture.notices.get_nowait())
        except Empty:
            return


def _screen(pipeline: Pipeline, frame: Frame, config: StreamConfig, aggregator: LesionAggregator,
            tally: _Tally) -> tuple[Analysis, Update | None, LesionTrack | None]:
    """One frame through the gates and the tracker: (its analysis, what it did to its lesion, the
    lesion it ended if any)."""
    analysis = analyse(pipeline, frame.image)
    if analysis.result is None:
        tally.rejected[analysis.reason] += 1
        tally.rejected_since_event[analysis.reason] += 1
        return analysis, None, aggregator.unusable()  # any reason: no usable lesion in view
    tally.analysed += 1
    result = analysis.result
    update = aggregator.update(frame.index, list(result.probabilities.values()), result.malignant_probability,
                               analysis.lesion_quality.box, appearance(analysis.image, result.mask))
    sharp = analysis.image_quality.sharpness
    if tally.best is None or sharp > tally.best[0]:
        tally.best = (sharp, frame.index, analysis, update.lesion)
    best = tally.lesion_best.get(update.lesion)
    if best is None or sharp > best[0]:
        tally.lesion_best[update.lesion] = (sharp, frame.index, analysis, update.lesion)
    return analysis, update, update.ended


def _events(frame: Frame, analysis: Analysis, update: Update | None, now: float, start: float,
            config: StreamConfig, tally: _Tally, emit) -> None:
    latency = round((now - frame.captured) * 1e3, 3)
    every = config.frame_every
    if every is not None and (tally.last_frame_event is None or now - tally.last_frame_event >= every):
        tally.last_frame_event = now
        event = {"type": "frame", "frame": frame.index, "t": round(frame.captured - start, 3),
                 "status": "rejected" if analysis.result is None else "analysed", "reason": analysis.reason}
        if analysis.reason:
            event["hint"] = HINTS[analysis.reason]
        if analysis.result is not None:
            r = analysis.result
            event.update(label=r.label, confidence=round(r.confidence, 4),
                         malignant_probability=round(r.malignant_probability, 4), box=r.box)
        if update is not None:
            event.update(lesion=update.lesion, new_lesion=update.new_lesion, change=update.change,
                         smoothed_label=update.label,
                         smoothed_malignant_probability=round(update.malignant_probability, 4),
                         above=update.above, window=update.window)
        event["quality"] = analysis.quality_dict()
        event["rejected_since_last"] = dict(tally.rejected_since_event)
        event["latency_ms"] = latency
        tally.rejected_since_event.clear()
        emit(event)
    if update is not None and update.alert is not None:
        emit({**update.alert, "t": round(frame.captured - start, 3), "latency_ms": latency})


def lesion_image_path(path: Path, lesion: int) -> Path:
    """Where lesion `lesion`'s sharpest frame goes, beside the run's: best.jpg -> best.lesion3.jpg."""
    path = Path(path)
    return path.with_name(f"{path.stem}.lesion{lesion}{path.suffix}")


def _end_lesion(track: LesionTrack, aggregator: LesionAggregator, config: StreamConfig, tally: _Tally,
                emit) -> None:
    """A lesion is over: write its sharpest frame, record it on the lesion and say so (`lesion` event)."""
    best = tally.lesion_best.pop(track.lesion, None)
    path = None if config.best_frame is None else lesion_image_path(config.best_frame, track.lesion)
    track.best_frame = _save_best(best, path)
    emit({"type": "lesion", **aggregator.lesion_record(track)})


def _save_best(best: tuple | None, path: Path | None) -> dict | None:
    """A sharpest analysed frame (of the run, or of one lesion), written with its overlay (what a
    clinician would want to look at afterwards)."""
    if best is None:
        return None
    sharp, index, analysis, lesion = best
    record = {"frame": index, "lesion": lesion, "sharpness": round(sharp, 3), "label": analysis.result.label,
              "malignant_probability": round(analysis.result.malignant_probability, 4), "path": None}
    if path is not None:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write_rgb(path, draw_overlay(analysis.image, analysis.result))
            record["path"] = str(path)
        except OSError as exc:
            record["error"] = str(exc)
    return record


class VideoRecorder:
    """Writes annotated frames to a video (.mp4: mp4v, .avi: MJPG), sized by the first frame.

    Only processed frames are written, at `fps`: when frames were dropped the recording plays
    faster than the scene did."""

    def __init__(self, path: Path | str, fps: float):
        self.path, self.fps = Path(path), fps
        self._writer = None
        self._size = None

    def __call__(self, image: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
            self._size = (image.shape[1], image.shape[0])
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), self.fps, self._size)
            if not self._writer.isOpened():
                raise SourceError(f"cannot write video {self.path} (fourcc {fourcc}): try a .avi path")
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


class Preview:
    """A window showing the annotated frames; `q` or Esc in it stops the stream."""

    def __init__(self, title: str = "dermedge stream"):
        self.title = title
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise SourceError("no preview window: no display (DISPLAY is not set)")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise SourceError("no preview window: this OpenCV has no GUI (opencv-python-headless) or there is "
                              f"no display ({str(exc).strip().splitlines()[-1]})") from None

    def __call__(self, image: np.ndarray) -> bool:
        cv2.imshow(self.title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass
