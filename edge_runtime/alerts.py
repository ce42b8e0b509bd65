"""From noisy per-frame results to one steady answer per lesion, and when to say "refer".

A single frame's malignant probability flickers with focus, glare and hand tremor; alerting on it
would cry wolf many times a minute. So the good frames of one lesion are aggregated: an exponential
mean of the class probabilities for what is shown, and a K-of-N vote for the alert: "refer" once the
malignant probability has reached the threshold in K of the lesion's last N good frames. Once per
lesion: a user holding the camera over the lesion wants one alert, not thirty a second.

A vote must never mix two lesions, so the window restarts when the view moves to another lesion:
the tight lesion box of a good frame overlaps the previous good frame's by less than `min_iou`
(another place in the frame), or the segmenter has found no lesion for `lost_after` frames in a row
(the camera left the lesion, even if the next one is centred where the last one was).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

LISTED_LESIONS = 20  # the summary lists the last lesions seen; a long session may see hundreds


@dataclass(frozen=True)
class AlertPolicy:
    threshold: float | None = None  # malignant probability a frame must reach; None: the bundle's
    k: int = 3
    n: int = 5
    smoothing: float = 0.3  # weight of the newest frame in the exponential mean
    min_iou: float = 0.25  # lesion boxes of consecutive good frames overlapping less: another lesion
    lost_after: int = 10  # frames in a row without a lesion that end the current lesion

    def __post_init__(self):
        if not 1 <= self.k <= self.n:
            raise ValueError(f"the alert needs 1 <= K <= N, got K={self.k}, N={self.n}")
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {self.smoothing}")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ValueError(f"the alert threshold is a probability, got {self.threshold}")


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class LesionTrack:
    """The good frames of one lesion: its window for the vote and its smoothed probabilities."""

    lesion: int
    first_frame: int
    box: tuple[float, ...]
    probabilities: np.ndarray
    malignant_probability: float
    last_frame: int = -1
    frames: int = 0
    window: deque = field(default_factory=deque)
    referred_at: int | None = None

    def to_dict(self, labels: Sequence[str], threshold: float) -> dict:
        return {
            "lesion": self.lesion,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "good_frames": self.frames,
            "label": labels[int(np.argmax(self.probabilities))],
            "malignant_probability": round(self.malignant_probability, 4),
            "window_mean": round(float(np.mean(self.window)), 4),
            "above": sum(p >= threshold for p in self.window),
            "referred": self.referred_at is not None,
            "referred_at_frame": self.referred_at,
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


class LesionAggregator:
    """Feed it every good frame (`update`) and every frame where no lesion was found (`no_lesion`)."""

    def __init__(self, policy: AlertPolicy, labels: Sequence[str]):
        if policy.threshold is None:
            raise ValueError("resolve the alert threshold first (e.g. the bundle's malignant threshold)")
        self.policy, self.labels = policy, tuple(labels)
        self.tracks: list[LesionTrack] = []
        self.current: LesionTrack | None = None
        self.alerts = 0
        self._missing = 0

    def no_lesion(self) -> None:
        self._missing += 1
        if self._missing >= self.policy.lost_after:
            self.current = None

    def update(self, frame: int, probabilities: Sequence[float], malignant_probability: float,
               box: Sequence[float]) -> Update:
        policy, track = self.policy, self.current
        self._missing = 0
        probabilities = np.asarray(probabilities, np.float64)
        new_lesion = track is None or box_iou(box, track.box) < policy.min_iou
        if new_lesion:
            track = LesionTrack(lesion=len(self.tracks) + 1, first_frame=frame, box=tuple(box),
                                probabilities=probabilities, malignant_probability=malignant_probability,
                                window=deque(maxlen=policy.n))
            self.tracks.append(track)
            self.current = track
        else:
            a = policy.smoothing
            track.probabilities = a * probabilities + (1 - a) * track.probabilities
            track.malignant_probability = a * malignant_probability + (1 - a) * track.malignant_probability
            track.box = tuple(box)
        track.window.append(malignant_probability)
        track.frames += 1
        track.last_frame = frame
        above = sum(p >= policy.threshold for p in track.window)
        label = self.labels[int(np.argmax(track.probabilities))]
        alert = None
        if above >= policy.k and track.referred_at is None:
            track.referred_at = frame
            self.alerts += 1
            alert = {"type": "alert", "decision": "refer", "frame": frame, "lesion": track.lesion,
                     "label": label, "malignant_probability": round(track.malignant_probability, 4),
                     "frame_malignant_probability": round(malignant_probability, 4), "above": above,
                     "k": policy.k, "n": policy.n, "threshold": policy.threshold}
        return Update(track.lesion, new_lesion, track.malignant_probability, label, above, len(track.window), alert)

    def decision(self) -> dict:
        """The run's answer: "refer" if any lesion was referred, "no_referral" if at least one
        lesion was seen in N good frames without reaching K, else "insufficient_frames"."""
        if any(t.referred_at is not None for t in self.tracks):
            result = "refer"
        elif any(t.frames >= self.policy.n for t in self.tracks):
            result = "no_referral"
        else:
            result = "insufficient_frames"
        return {"result": result, "alerts": self.alerts, "threshold": self.policy.threshold,
                "k": self.policy.k, "n": self.policy.n, "lesions_seen": len(self.tracks),
                "lesions": [t.to_dict(self.labels, self.policy.threshold) for t in self.tracks[-LISTED_LESIONS:]]}
