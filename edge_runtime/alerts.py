"""From noisy per-frame results to one steady answer per lesion, and when to say "refer".

A single frame's malignant probability flickers with focus, glare and hand tremor; alerting on it
would cry wolf many times a minute. So the good frames of one lesion are aggregated: an exponential
mean of the class probabilities for what is shown, and a K-of-N vote for the alert: "refer" once the
malignant probability has reached the threshold in K of the lesion's last N good frames. Once per
lesion: a user holding the camera over the lesion wants one alert, not thirty a second.

A vote must never mix two lesions (an alert for lesion A raised on frames of lesion B, or B's alert
swallowed because A already had one), so a small tracker decides, for every good frame, whether it
still shows the lesion of the previous good frame. A clinician moves from lesion to lesion; a new
lesion begins when the view changes (see `TrackingThresholds` for the numbers and why):
- a gap: `max_gap` frames in a row without a usable lesion (dark, blurred, no lesion, cut...), i.e.
  the camera left the lesion, even if the next one looks alike and sits where the last one was;
- the lesion moved: its box overlaps the previous good frame's by less than `min_iou`;
- the picture changed: the whole frame, as a coarse 8x6 grey thumbnail, correlates with the previous
  good frame's less than `min_view_correlation` (a cut to another photo or patch of skin);
- the lesion's colour changed: the histogram of its colours, taken relative to the mean colour of the
  skin around it, is further than `max_colour_distance` from the previous good frame's.
Every good frame is compared with the previous good frame, never with the lesion's first one, so a
slow pan or zoom, which changes the view a little each frame, stays one lesion; a short stretch of
unusable frames (a blur, a hair) is bridged by comparing across it. When in doubt the tracker splits:
a split only restarts the window, a merge can put one lesion's alert on another.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

LISTED_LESIONS = 20  # the summary lists the last lesions seen; a long session may see hundreds

APPEARANCE_SIDE = 200  # frames are subsampled by whole steps to a long side of 200-399 px first
THUMBNAIL_SIZE = (8, 6)  # width, height of the grey view thumbnail: the frame's coarse layout
COLOUR_BINS = 4  # per channel of the relative-colour histogram (4^3 bins: coarse, robust)
RELATIVE_SCALE = 160.0  # a lesion pixel as bright as the skin around it maps to 160 of 255


@dataclass(frozen=True)
class AlertPolicy:
    threshold: float | None = None  # malignant probability a frame must reach; None: the bundle's
    k: int = 3
    n: int = 5
    smoothing: float = 0.3  # weight of the newest frame in the exponential mean

    def __post_init__(self):
        if not 1 <= self.k <= self.n:
            raise ValueError(f"the alert needs 1 <= K <= N, got K={self.k}, N={self.n}")
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {self.smoothing}")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ValueError(f"the alert threshold is a probability, got {self.threshold}")


@dataclass(frozen=True)
class TrackingThresholds:
    """When a good frame starts a new lesion instead of continuing the previous good frame's.

    The view measures were set on 500 HAM10000 photos (one per lesion) seen through a simulated
    hand-held camera at 320x240 (drift of up to 3 px, 1% zoom and 1 degree of rotation per frame,
    +-3% exposure and white-balance flicker, noise, JPEG) and segmented by the shipped int8
    segmenter: 2,890 pairs of consecutive frames of one lesion, 2,046 pairs three frames apart (a
    short gap bridged, with three frames' motion) and 697 cuts from one photo to another. Each rule
    alone misses cuts (two centred brown nevi overlap, or look alike, or share colours); together
    they missed none, and split 0.14% of the consecutive pairs (4, all where the segmenter's mask
    jumped) and 0.6% of the pairs across a gap. At 640x480 (300 photos) and on drawn lesions (210)
    nothing was missed or split. When in doubt, split: that only restarts the vote, a merge can put
    one lesion's alert on another.
    """

    # Unusable frames in a row (any gate reason) that end the lesion. A third of a second at 30 fps
    # (counted in frames the stream took, not in source frames, which may have been dropped): a
    # refocus, a hair or a glint is shorter, lifting the dermatoscope to the next lesion is longer.
    max_gap: int = 10
    # Lesion boxes of consecutive good frames overlapping less: the lesion moved or changed size, or
    # the segmenter found another lesion in the same view. Same lesion: 1st percentile 0.84 frame to
    # frame, 0.66 three frames apart; cuts: median 0.45 (this rule alone catches 62% of them).
    min_iou: float = 0.5
    # Correlation of the zero-mean, unit-variance 8x6 grey thumbnails of the whole frame (its coarse
    # layout: where the dark lesion, the vignette, the light fall-off are), below which the picture
    # is another one. Same lesion: >= 0.98 frame to frame, 1st percentile 0.94 three frames apart;
    # cuts: median 0.44, 99th percentile 0.89 (alone: 99.9% of cuts). A finer 32x24 thumbnail lost
    # more to camera motion than it gained on cuts. Gain and offset cancel out: exposure changes do
    # not split a lesion.
    min_view_correlation: float = 0.92
    # Bhattacharyya distance between 4x4x4 RGB histograms of the lesion's pixels divided by the mean
    # colour of the skin around them (so a white-balance or exposure change cancels out). Same lesion:
    # 99th percentile 0.055 frame to frame, 0.074 three frames apart; cuts: median 0.47, 5th
    # percentile 0.21 (alone: 91% of cuts). Plain colour histograms split lesions on a 3% flicker.
    max_colour_distance: float = 0.25

    def __post_init__(self):
        if self.max_gap < 1:
            raise ValueError(f"max_gap must be at least 1 frame, got {self.max_gap}")
        if not 0 <= self.min_iou <= 1:
            raise ValueError(f"min_iou is an overlap in [0, 1], got {self.min_iou}")


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Appearance:
    """What a good frame looks like, for telling lesions apart (~0.2 ms a frame, at any resolution)."""

    thumbnail: np.ndarray  # the whole frame, grey, 8x6, zero mean and unit variance
    colour: np.ndarray  # lesion colours relative to the surrounding skin's mean: 4x4x4 histogram


def appearance(image: np.ndarray, mask: np.ndarray) -> Appearance:
    """The appearance of an RGB uint8 frame with its boolean lesion mask (same height and width)."""
    # Every step-th pixel, not an area average: a 1080p area resize alone costs ~6 ms, and colour
    # statistics and an 8x6 thumbnail (itself an area average) do not need one.
    step = max(1, max(mask.shape) // APPEARANCE_SIDE)
    image = np.ascontiguousarray(image[::step, ::step])
    lesion = np.ascontiguousarray(mask[::step, ::step], dtype=np.uint8)
    thumbnail = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), THUMBNAIL_SIZE,
                           interpolation=cv2.INTER_AREA).astype(np.float32)
    spread = float(thumbnail.std())
    thumbnail = (thumbnail - thumbnail.mean()) / spread if spread > 1e-3 else np.zeros_like(thumbnail)
    skin = 1 - lesion
    if np.count_nonzero(skin) < 0.01 * skin.size:  # the lesion fills the frame: the frame's mean
        skin = None
    reference = np.array(cv2.mean(image, skin)[:3], np.float32) + 1.0
    relative = cv2.transform(image, np.diag(RELATIVE_SCALE / reference))  # saturates at 255
    colour = cv2.calcHist([relative], [0, 1, 2], lesion, [COLOUR_BINS] * 3, [0, 256] * 3)
    return Appearance(thumbnail, colour)


def view_correlation(a: Appearance, b: Appearance) -> float:
    return float(np.mean(a.thumbnail * b.thumbnail))


def colour_distance(a: Appearance, b: Appearance) -> float:
    if not a.colour.any() or not b.colour.any():
        return 1.0
    return float(cv2.compareHist(a.colour, b.colour, cv2.HISTCMP_BHATTACHARYYA))


@dataclass
class LesionTrack:
    """The good frames of one lesion: its window for the vote and its smoothed probabilities."""

    lesion: int
    first_frame: int
    box: tuple[float, ...]
    probabilities: np.ndarray
    malignant_probability: float
    started_by: str = "start"  # why a new lesion began here: start, gap, moved, view_changed, colour_changed
    change: dict | None = None  # the measures against the previous good frame that started it
    last_frame: int = -1
    frames: int = 0
    window: deque = field(default_factory=deque)
    referred_at: int | None = None
    best_frame: dict | None = None  # the lesion's sharpest frame, as the stream records it

    def decision(self, n: int) -> str:
        if self.referred_at is not None:
            return "refer"
        return "no_referral" if self.frames >= n else "insufficient_frames"

    def to_dict(self, labels: Sequence[str], threshold: float, n: int) -> dict:
        return {
            "lesion": self.lesion,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "good_frames": self.frames,
            "started_by": self.started_by,
            "change": self.change,
            "decision": self.decision(n),
            "label": labels[int(np.argmax(self.probabilities))],
            "malignant_probability": round(self.malignant_probability, 4),
            "window_mean": round(float(np.mean(self.window)), 4),
            "above": sum(p >= threshold for p in self.window),
            "referred": self.referred_at is not None,
            "referred_at_frame": self.referred_at,
            "best_frame": self.best_frame,
        }


@dataclass(frozen=True)
class Update:
    """What one good frame did to the aggregate (`alert` is set on the frame that raised it)."""

    lesion: int
    new_lesion: bool
    malignant_probability: float  # smoothed
    label: str  # of the smoothed probabilities
    above: int
    window: int
    alert: dict | None
    change: dict | None = None  # this frame against the previous good frame (None: nothing to compare)
    ended: LesionTrack | None = None  # the lesion this frame's new lesion replaced


class LesionTracker:
    """Is this good frame the lesion of the previous good frame? (see the module docstring)"""

    def __init__(self, thresholds: TrackingThresholds = TrackingThresholds()):
        self.thresholds = thresholds
        self.box: tuple[float, ...] | None = None
        self.appearance: Appearance | None = None
        self.gap = 0
        self.lost = True  # no lesion yet, or the last one ended with a gap

    def unusable(self) -> bool:
        """A frame without a usable lesion; True when it is the one that ends the lesion."""
        self.gap += 1
        if not self.lost and self.gap >= self.thresholds.max_gap:
            self.lost = True
            return True
        return False

    def observe(self, box: Sequence[float], look: Appearance | None = None) -> tuple[str | None, dict | None]:
        """(why a new lesion begins here, or None if it is the same lesion; the measures)."""
        t = self.thresholds
        change = None
        if self.lost:
            reason = "start" if self.box is None else "gap"
        else:
            iou = box_iou(box, self.box)
            change = {"gap": self.gap, "box_iou": round(iou, 3), "view_correlation": None, "colour_distance": None}
            if look is not None and self.appearance is not None:
                change["view_correlation"] = round(view_correlation(look, self.appearance), 3)
                change["colour_distance"] = round(colour_distance(look, self.appearance), 3)
            reason = None
            if iou < t.min_iou:
                reason = "moved"
            elif change["view_correlation"] is not None and change["view_correlation"] < t.min_view_correlation:
                reason = "view_changed"
            elif change["colour_distance"] is not None and change["colour_distance"] > t.max_colour_distance:
                reason = "colour_changed"
        self.box, self.appearance, self.gap, self.lost = tuple(box), look, 0, False
        return reason, change


class LesionAggregator:
    """Feed it every good frame (`update`) and every frame without a usable lesion (`unusable`)."""

    def __init__(self, policy: AlertPolicy, labels: Sequence[str], tracking: TrackingThresholds = TrackingThresholds()):
        if policy.threshold is None:
            raise ValueError("resolve the alert threshold first (e.g. the bundle's malignant threshold)")
        self.policy, self.labels = policy, tuple(labels)
        self.tracker = LesionTracker(tracking)
        # Only the last LISTED_LESIONS lesions are kept (the summary lists them), and counts for the
        # rest: a session of hours sees thousands of lesions, and memory must not grow with them.
        self.tracks: deque[LesionTrack] = deque(maxlen=LISTED_LESIONS)
        self.lesions_seen = 0
        self.complete_lesions = 0  # lesions seen in at least N good frames (a vote could be taken)
        self.current: LesionTrack | None = None
        self.alerts = 0

    def unusable(self) -> LesionTrack | None:
        """A frame rejected by the gate; returns the lesion it ended (`max_gap` in a row), if any."""
        if self.tracker.unusable() and self.current is not None:
            ended, self.current = self.current, None
            return ended
        return None

    def finish(self) -> LesionTrack | None:
        """The stream ended: the lesion still open, if any (it ends here)."""
        ended, self.current = self.current, None
        self.tracker.lost = True  # whatever comes after is another lesion
        return ended

    def update(self, frame: int, probabilities: Sequence[float], malignant_probability: float,
               box: Sequence[float], look: Appearance | None = None) -> Update:
        policy = self.policy
        probabilities = np.asarray(probabilities, np.float64)
        reason, change = self.tracker.observe(box, look)
        track, ended = self.current, None
        new_lesion = reason is not None or track is None
        if new_lesion:
            ended = track
            self.lesions_seen += 1
            track = LesionTrack(lesion=self.lesions_seen, first_frame=frame, box=tuple(box),
                                probabilities=probabilities, malignant_probability=malignant_probability,
                                started_by=reason or "gap", change=change, window=deque(maxlen=policy.n))
            self.tracks.append(track)
            self.current = track
        else:
            a = policy.smoothing
            track.probabilities = a * probabilities + (1 - a) * track.probabilities
            track.malignant_probability = a * malignant_probability + (1 - a) * track.malignant_probability
            track.box = tuple(box)
        track.window.append(malignant_probability)
        track.frames += 1
        self.complete_lesions += track.frames == policy.n
        track.last_frame = frame
        above = sum(p >= policy.threshold for p in track.window)
        label = self.labels[int(np.argmax(track.probabilities))]
        alert = None
        if above >= policy.k and track.referred_at is None:
            track.referred_at = frame
            self.alerts += 1  # at most one per lesion: it is referred once
            alert = {"type": "alert", "decision": "refer", "frame": frame, "lesion": track.lesion,
                     "lesion_first_frame": track.first_frame, "label": label,
                     "malignant_probability": round(track.malignant_probability, 4),
                     "frame_malignant_probability": round(malignant_probability, 4), "above": above,
                     "k": policy.k, "n": policy.n, "threshold": policy.threshold}
        return Update(track.lesion, new_lesion, track.malignant_probability, label, above, len(track.window), alert,
                      change, ended)

    def lesion_record(self, track: LesionTrack) -> dict:
        return track.to_dict(self.labels, self.policy.threshold, self.policy.n)

    def decision(self) -> dict:
        """The run's answer: "refer" if any lesion was referred, "no_referral" if at least one
        lesion was seen in N good frames without reaching K, else "insufficient_frames"."""
        if self.alerts:
            result = "refer"
        elif self.complete_lesions:
            result = "no_referral"
        else:
            result = "insufficient_frames"
        return {"result": result, "alerts": self.alerts, "threshold": self.policy.threshold,
                "k": self.policy.k, "n": self.policy.n, "lesions_seen": self.lesions_seen,
                "lesions": [self.lesion_record(t) for t in self.tracks]}
