"""Getting frames off a camera, a video file or a network stream, next to inference, never behind it.

Capture runs in its own thread and hands frames to inference through a one-frame slot where the
newest frame wins: when inference is slower than the camera, the frame it has not taken yet is
replaced (and counted as dropped) rather than queued, so what is analysed is always what the camera
sees now and memory never grows. A camera that stops delivering is retried with a growing delay,
reopened each time, before capture gives up.

Sources are anything with `read() -> RGB array | None`, a `live` flag and an `fps` (see
`FrameSource`): `VideoSource` wraps OpenCV's `VideoCapture`, `IterSource` wraps any iterable, which
is how tests and other programs feed the stream.

Video files are not cameras. Read as fast as possible (the default), a file is decoded only as fast
as inference takes its frames: nothing is dropped, every frame is analysed, results do not depend on
the machine's speed (what tests need) and the analysed fps is the pipeline's ceiling (what the
throughput benchmark measures). With `pace=True` a file plays at its own fps like a camera, and
frames are dropped when inference falls behind (what capture-to-event latency is measured on).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Callable, Iterable, Iterator, Protocol

import cv2
import numpy as np

NETWORK_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://")


class SourceError(Exception):
    """A source that cannot be opened or written: the message says which and what to check."""


class FrameSource(Protocol):
    live: bool  # a camera or network stream: a failed read is retried; a file: it is the end
    fps: float | None  # frames per second the source claims (None: unknown)
    name: str

    def read(self) -> np.ndarray | None:
        """The next RGB uint8 frame, or None when none came."""


@dataclass
class Frame:
    image: np.ndarray  # RGB uint8
    index: int  # 0-based order in which the source delivered it
    captured: float  # clock() right after the source returned it


@dataclass(frozen=True)
class Backoff:
    """Delays between retries of a live source: 0.25, 0.5, 1, 2, 4 s by default (~8 s in all),
    enough for a USB camera to be re-enumerated or a Wi-Fi stream to come back."""

    attempts: int = 5
    first_s: float = 0.25
    factor: float = 2.0
    max_s: float = 4.0

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        for _ in range(self.attempts):
            yield min(delay, self.max_s)
            delay *= self.factor


class VideoSource:
    """An OpenCV `VideoCapture`: camera index, /dev/video* device, video file or stream URL."""

    def __init__(self, spec: str | int):
        self.spec = spec
        target, self.live, self.name = _parse(spec)
        self._target = target
        self._capture = self._open()
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else None

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(self._target)
        if not capture.isOpened():
            capture.release()
            if self.live:
                raise SourceError(f"cannot open {self.name}: is it connected and not used by another program "
                                  "(on Linux, is your user in the 'video' group)?")
            raise SourceError(f"cannot decode {self.name}: not a video this OpenCV build reads")
        if self.live:
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where supported: no stale frames queued in the driver
        return capture

    def read(self) -> np.ndarray | None:
        ok, frame = self._capture.read()
        if not ok or frame is None:
            return None
        if frame.ndim == 2:
            return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def reopen(self) -> None:
        self._capture.release()
        self._capture = self._open()

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _parse(spec: str | int) -> tuple[str | int, bool, str]:
    """(what VideoCapture opens, live?, a name for messages)."""
    text = str(spec).strip()
    if isinstance(spec, int) or text.isdigit():
        return int(text), True, f"camera {text}"
    if text.startswith("/dev/video"):
        return text, True, f"camera {text}"
    if text.lower().startswith(NETWORK_SCHEMES):
        return text, True, f"stream {text}"
    if not Path(text).is_file():
        raise FileNotFoundError(f"no video file or camera {text!r}: give a camera index (0), a /dev/video* "
                                "device, a video file or a stream URL")
    return text, False, f"video file {text}"


def open_source(spec: str | int) -> VideoSource:
    return VideoSource(spec)


class IterSource:
    """Frames from any iterable: each item an RGB frame, or None for a read that failed (retried
    when `live`); the end of the iterable is the end of the stream. `reopen`, if given, is called
    before each retry, as a camera would be reopened."""

    def __init__(self, frames: Iterable[np.ndarray | None], live: bool = False, fps: float | None = None,
                 name: str = "frames", reopen: Callable[[], None] | None = None):
        self._frames = iter(frames)
        self.live, self.fps, self.name = live, fps, name
        self._reopen = reopen
        self.ended = False

    def read(self) -> np.ndarray | None:
        try:
            return next(self._frames)
        except StopIteration:
            self.ended = True
            return None

    def reopen(self) -> None:
        if self._reopen:
            self._reopen()


class LatestFrameSlot:
    """One frame between capture and inference: `put` replaces a frame not yet taken (a drop),
    or with `wait=True` waits for it to be taken (a file read without dropping)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.closed = False
        self.delivered = 0  # frames put
        self.dropped = 0  # frames replaced before inference took them

    def put(self, frame: Frame, wait: bool = False) -> bool:
        """False when the slot was closed (inference has stopped) and the frame was not taken in."""
        with self._cond:
            if wait:
                self._cond.wait_for(lambda: self._frame is None or self.closed)
            if self.closed:
                return False
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.delivered += 1
            self._cond.notify_all()
            return True

    def wait_for_room(self) -> bool:
        """Wait until the slot is empty (False if it was closed instead): a file reader decodes its
        next frame only then, so no decoded frame waits outside the slot and its clock starts late."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is None or self.closed)
            return not self.closed

    def take(self, timeout: float | None = None) -> Frame | None:
        """The newest frame, waiting up to `timeout` s; None if none came (or the slot is closed and empty)."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self.closed, timeout)
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        """No more frames go in; one still waiting can be taken."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def discard(self) -> None:
        """Count a frame left untaken at the end as dropped."""
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
                self._frame = None

    @property
    def finished(self) -> bool:
        with self._cond:
            return self.closed and self._frame is None


class Capture(threading.Thread):
    """Reads `source` into `slot` until the source ends, fails for good, or `stop()` is called;
    closes the source itself when done (its reads may block, so only this thread touches it).

    Notices for the event stream (retries, recovery) go into `notices`, for the inference thread
    to pass on: only that thread writes events."""

    def __init__(self, source: FrameSource, slot: LatestFrameSlot, *, pace: bool = False,
                 backoff: Backoff = Backoff(), sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        super().__init__(name="dermedge-capture", daemon=True)
        self.source, self.slot, self.backoff, self.clock = source, slot, backoff, clock
        self._halt = threading.Event()
        self.sleep = sleep or self._halt.wait  # wakes early on stop()
        self.drop = bool(source.live or pace)  # a camera never waits; a file waits unless paced
        self.pace_fps = source.fps if pace and not source.live else None
        self.notices: SimpleQueue = SimpleQueue()
        self.retries = 0
        self.failure: str | None = None  # why a live source was given up on
        self.error: BaseException | None = None  # an unexpected exception in the source

    def stop(self) -> None:
        self._halt.set()
        self.slot.close()

    def run(self) -> None:
        start = self.clock()
        index = 0
        try:
            while not self._halt.is_set():
                if not self.drop and not self.slot.wait_for_room():
                    break
                image = self._read()
                if image is None:
                    break
                if self.pace_fps:
                    delay = start + index / self.pace_fps - self.clock()
                    if delay > 0:
                        self.sleep(delay)
                if not self.slot.put(Frame(image, index, self.clock()), wait=not self.drop):
                    break
                index += 1
        except Exception as exc:  # noqa: BLE001 - reported by the stream as its end
            self.error = exc
        finally:
            self.slot.close()
            close = getattr(self.source, "close", None)
            if close:
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing a failed camera may fail too
                    pass

    def _try_read(self) -> tuple[np.ndarray | None, str | None]:
        try:
            return self.source.read(), None
        except Exception as exc:  # noqa: BLE001 - a live source's read error is a failed read
            if not self.source.live:
                raise
            return None, f"{type(exc).__name__}: {exc}"

    def _read(self) -> np.ndarray | None:
        image, error = self._try_read()
        if image is not None or not self.source.live or getattr(self.source, "ended", False):
            return image  # a frame, the end of a file, or a fake live source that has run out
        waited = 0.0
        for attempt, delay in enumerate(self.backoff.delays(), 1):
            if self._halt.is_set():
                return None
            self.retries += 1
            self.notices.put({"type": "source", "status": "retrying", "source": self.source.name,
                              "attempt": attempt, "of": self.backoff.attempts, "delay_s": delay, "error": error})
            self.sleep(delay)
            waited += delay
            if self._halt.is_set():
                return None
            try:
                reopen = getattr(self.source, "reopen", None)
                if reopen:
                    reopen()
            except Exception as exc:  # noqa: BLE001 - the device may still be away: try again later
                error = f"{type(exc).__name__}: {exc}"
                continue
            image, error = self._try_read()
            if image is not None:
                self.notices.put({"type": "source", "status": "recovered", "source": self.source.name,
                                  "attempt": attempt})
                return image
        self.failure = (f"{self.source.name} stopped delivering frames; gave up after {self.backoff.attempts} "
                        f"retries over {waited:.1f} s" + (f" (last error: {error})" if error else ""))
        return None
