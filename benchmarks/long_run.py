"""Long runs: does memory stay flat over 100,000 stream frames and 10,000 `predict` images?

Not a timed test: a benchmark to run by hand (its length is set by the CPU it gets: see below).
Two parts, each in a fresh child process of this script, so that each one's peak RSS (`ru_maxrss`,
which only ever rises) is its own and not the other part's or the image generator's:

- stream: `edge_runtime.stream.run_stream`, the loop `dermedge stream` runs (capture thread, latest-frame
  slot, quality gate, both models, lesion tracker, K-of-N alerts, per-lesion sharpest frames), with the
  shipped bundle, over frames drawn on the fly and read like a video file (nothing dropped). A
  simulated session: lesions drawn by `edge_runtime.synthetic.draw_lesion` (a new shape and the next
  class's pigment each), each held for 30-90 frames under hand tremor, separated in turn by a direct
  cut, black frames, blurred frames (a refocus), a long black gap (>= max_gap: the lesion ends on a
  gap), glare (overexposed), bare skin (no lesion) and the lesion pushed against the border. Events go
  to a JSON Lines file as `--jsonl` writes them (`--frame-every 1`, the command's default) and each
  lesion's sharpest frame is written beside `--best` (then deleted, so the disk does not fill). Drawn
  lesions read benign (malignant 0.00-0.12), so the alert threshold is lowered to 0.08
  (`--alert-threshold`) for the alert path to run too.
- predict: `dermedge.commands.predict.predict_files`, the function behind `dermedge predict DIR
  --jsonl F --csv F`, over a folder of JPEGs: drawn lesions written by the parent before the child
  starts (never kept), or `--images-dir` (e.g. HAM10000's 10,015 photos, read only).

RSS is read in the child: peak (`resource.getrusage().ru_maxrss`) and current (`/proc/self/statm`),
after a warm-up (`--warmup-frames`, `--warmup-images`: interpreter buffers, XNNPACK packing,
OpenCV and allocator pools) and at the end, and every `--sample-every` frames or images for the
curve. The stream is sampled from the frame generator (the capture thread), `predict` from a
counting wrapper around the pipeline's `predict` method (the batch loop itself is untouched).
Pass: peak RSS at the end minus peak RSS after the warm-up <= 10 MB, for each part. Throughput is
frames (images) per second between the warm-up and the end; a figure measured beside other work
is a lower bound. The process's CPU time per frame (image) over the same span is given too: what the
part costs whatever else runs, and what tells how long a run takes on an idle machine.

Where the time goes: the frames are drawn on the fly because drawing is cheap beside the runtime.
A 500-frame profile (2026-12-03, beside a training job) spent 15.9 ms of CPU a frame in all, of
which the generator took 0.8 ms (`draw_lesion` once a lesion, a `np.roll` a frame); the rest is the
runtime (segmenter and classifier `Invoke`, mask clean-up, resizes, the tracker). A pre-rendered
video would save those 5% and add a decoder, so it is not used. The wall-clock rate is set by the
CPU share: at nice 19 beside a TensorFlow job on both cores this script gets a few percent of the
CPU (3.6 frames/s: a 100,000-frame stream then takes about 8 h, so give --minutes); on an idle
machine it has a core, and 15.9 ms a frame projects to about 60 frames/s, the stream in about half
an hour (a projection from CPU time, not a measurement).

    python benchmarks/long_run.py                        # 100,000 frames + 10,000 images
    python benchmarks/long_run.py --frames 3000 --images 500 --out /tmp/long_run_check
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from dermedge.commands.machine import machine_info
from edge_runtime.synthetic import draw_lesion

GROWTH_LIMIT_MB = 10.0
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- memory ------------------------------------------------------------------------------------------

def rss_mb() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Sampler:
    """RSS and time at a count of frames (images): the warm-up point, every `every`, and the end."""

    def __init__(self, warmup: int, every: int, total: int, unit: str, progress=None):
        self.warmup, self.every, self.total, self.unit = warmup, every, total, unit
        self.samples: list[dict] = []
        self.start = time.perf_counter()
        self.progress = progress
        self.snapshot = None

    def sample(self, count: int) -> dict:
        s = {"count": count, "t_s": round(time.perf_counter() - self.start, 3),
             "cpu_s": round(time.process_time(), 3),  # all threads of this process, user + system
             "rss_mb": round(rss_mb(), 2), "peak_rss_mb": round(peak_rss_mb(), 2),
             # Python's own heap, which RSS hides behind the allocator's slack: objects the
             # collector tracks and blocks pymalloc has handed out
             "gc_objects": len(gc.get_objects()), "allocated_blocks": sys.getallocatedblocks()}
        if tracemalloc.is_tracing():
            s["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 3)
            if count == self.warmup:
                self.snapshot = tracemalloc.take_snapshot()
        self.samples.append(s)
        line = (f"{self.unit} {count:>7}: rss {s['rss_mb']:.1f} MB, peak {s['peak_rss_mb']:.1f} MB, "
                f"{s['t_s']:.0f} s, load {os.getloadavg()[0]:.2f}")
        if self.progress is not None:
            self.progress.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)
        return s

    def tick(self, count: int) -> None:
        """Called with the number done so far."""
        if count == self.warmup or (count and count % self.every == 0):
            self.sample(count)

    def figures(self, done: int) -> dict:
        """The figures, from the warm-up sample to the last sample at `done` (taken now if none was)."""
        end = self.sample(done) if not self.samples or self.samples[-1]["count"] != done else self.samples[-1]
        after = {"rss_mb": round(rss_mb(), 2), "peak_rss_mb": round(peak_rss_mb(), 2)}  # once the run let go
        start = next((s for s in self.samples if s["count"] == self.warmup), self.samples[0])
        span = end["t_s"] - start["t_s"]
        cpu = end["cpu_s"] - start["cpu_s"]
        grown = None
        if self.snapshot is not None:  # --tracemalloc: where the Python heap grew after the warm-up
            diff = tracemalloc.take_snapshot().compare_to(self.snapshot, "lineno")
            diff = sorted((d for d in diff if d.size_diff > 0), key=lambda d: -d.size_diff)
            grown = [{"where": str(d.traceback[0]), "kb": round(d.size_diff / 1024, 1), "blocks": d.count_diff}
                     for d in diff[:12]]
        return {
            "count": done,
            "warmup": start["count"],
            "start": start,
            "end": end,
            "peak_rss_growth_mb": round(end["peak_rss_mb"] - start["peak_rss_mb"], 2),
            "rss_growth_mb": round(end["rss_mb"] - start["rss_mb"], 2),
            "per_s_after_warmup": round((done - start["count"]) / span, 2) if span > 0 else None,
            "per_s_overall": round(done / end["t_s"], 2) if end["t_s"] > 0 else None,
            # what the part costs, whatever else shares the CPU: the process's CPU time per frame (image)
            "cpu_ms_each_after_warmup": round(1000 * cpu / (done - start["count"]), 2) if done > start["count"] else None,
            "wall_s": end["t_s"],
            "passed": end["peak_rss_mb"] - start["peak_rss_mb"] <= GROWTH_LIMIT_MB,
            "after_run": after,
            "samples": self.samples,
            "heap_growth": grown,
        }


def progress(total: int, desc: str):
    from tqdm import tqdm

    # a log file (nohup) gets a line every half minute, a terminal a live bar
    return tqdm(total=total, desc=desc, unit="", file=sys.stderr, mininterval=0.5 if sys.stderr.isatty() else 30,
                dynamic_ncols=True, smoothing=0.05)


# -- the stream --------------------------------------------------------------------------------------

TRANSITIONS = ("cut", "black", "blur", "long_gap", "glare", "bare_skin", "border")


class Session:
    """A dermatoscope moving from lesion to lesion: RGB frames drawn on the fly (see the docstring);
    `lesions` counts the lesions drawn so far."""

    def __init__(self, frames: int, width: int, height: int, seed: int = 0):
        self.frames, self.width, self.height, self.seed = frames, width, height, seed
        self.lesions = 0

    def _gap(self, transition: str, image: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        if transition == "black":
            return [np.zeros_like(image)] * 4
        if transition == "blur":  # the camera refocusing
            return [cv2.GaussianBlur(image, (0, 0), 5)] * 3
        if transition == "long_gap":  # longer than the tracker's max_gap: the lesion ends on the gap
            return [np.zeros_like(image)] * 12
        if transition == "glare":
            return [np.full_like(image, 250)] * 3
        if transition == "bare_skin":
            skin = np.clip(np.array([225, 180, 150], np.float32) + rng.normal(0, 9, image.shape), 0, 255)
            return [cv2.GaussianBlur(skin.astype(np.uint8), (5, 5), 0)] * 5
        if transition == "border":  # the lesion split by the frame's edges
            return [np.roll(image, self.width // 2, axis=1)] * 3
        return []  # a direct cut

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        produced = 0
        while True:
            image = draw_lesion(np.random.default_rng(self.seed * 1_000_003 + self.lesions), self.width, self.height,
                                class_index=self.lesions % 7)[0]
            self.lesions += 1
            gap = self._gap(TRANSITIONS[self.lesions % len(TRANSITIONS)], image, rng)
            for frame in itertools.chain(gap, self._held(image, rng)):
                if produced >= self.frames:
                    return
                yield frame  # one frame at a time: the generator holds no more than a gap's few frames
                produced += 1

    @staticmethod
    def _held(image: np.ndarray, rng: np.random.Generator):
        """The lesion held by hand for 30-90 frames: a pixel or so of tremor a frame."""
        dx = dy = 0
        for _ in range(int(rng.integers(30, 91))):
            dx, dy = (int(np.clip(v + rng.integers(-1, 2), -4, 4)) for v in (dx, dy))
            yield np.roll(image, (dy, dx), axis=(0, 1))


def run_stream_part(args) -> dict:
    from edge_runtime.alerts import AlertPolicy
    from edge_runtime.capture import IterSource
    from edge_runtime.pipeline import Pipeline
    from edge_runtime.stream import StreamConfig, run_stream

    width, height = (int(v) for v in args.size.lower().split("x"))
    pipeline = Pipeline.load(None, args.variant, num_threads=args.threads)
    bar = progress(args.frames, "stream frames")
    sampler = Sampler(args.warmup_frames, args.sample_every, args.frames, "frame", bar)

    session = Session(args.frames, width, height)
    deadline = time.perf_counter() + args.minutes * 60 if args.minutes else None
    stopped = [False]

    def frames():
        count = 0
        for count, frame in enumerate(session, 1):
            sampler.tick(count - 1)  # frames handed over so far (the slot holds at most one more)
            if deadline is not None and time.perf_counter() > deadline:
                stopped[0], count = True, count - 1  # the end of the "file": the stream ends as it would
                break
            bar.update(1)
            yield frame
        sampler.sample(count)  # the end, while the stream's state (lesions, latency windows) is alive

    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="dermedge-long-run-") as tmp:
        events_path = Path(tmp) / "events.jsonl"
        config = StreamConfig(alerts=AlertPolicy(threshold=args.alert_threshold), frame_every=1.0,
                              best_frame=Path(tmp) / "events.best.jpg")
        with open(events_path, "w") as events:
            def on_event(event: dict) -> None:
                events.write(json.dumps(event) + "\n")
                events.flush()
                counts[event["type"]] = counts.get(event["type"], 0) + 1
                if event["type"] == "lesion" and (event.get("best_frame") or {}).get("path"):
                    Path(event["best_frame"]["path"]).unlink(missing_ok=True)  # written, checked, not kept

            summary = run_stream(pipeline, IterSource(frames(), name="synthetic session"), config, on_event)
        events_mb = events_path.stat().st_size / 2**20
    bar.close()
    figures = sampler.figures(summary["frames"])
    decision = summary["decision"]
    figures.update({
        "target": args.frames, "stopped_by_time_budget": stopped[0], "time_budget_min": args.minutes,
        "variant": pipeline.variant, "threads": pipeline.num_threads, "backend": pipeline.backend,
        "frame_size": [width, height], "lesions_drawn": session.lesions,
        "stream_summary": {k: summary[k] for k in ("ended", "frames", "analysed", "rejected", "rejected_total",
                                                   "dropped", "duration_s", "fps", "latency_ms", "inference_ms",
                                                   "alerts")},
        "alert_threshold": args.alert_threshold, "lesions_seen": decision["lesions_seen"], "decision": decision["result"],
        "events": counts, "events_file_mb": round(events_mb, 2),
    })
    return figures


# -- predict -----------------------------------------------------------------------------------------

def write_images(folder: Path, count: int, width: int, height: int) -> None:
    """`count` drawn lesions as JPEGs (quality 90), a new shape and pigment each."""
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(count), desc="writing images", file=sys.stderr, mininterval=30, unit=""):
        image, _ = draw_lesion(np.random.default_rng(10_000 + i), width, height, class_index=i % 7)
        cv2.imwrite(str(folder / f"synthetic_{i:06d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])


def run_predict_part(args) -> dict:
    from edge_runtime.image_io import find_images
    from edge_runtime.pipeline import Pipeline
    from dermedge.commands.predict import predict_files

    pipeline = Pipeline.load(None, args.variant, num_threads=args.threads)
    paths, problems = find_images([str(args.images_dir)])
    total = min(len(paths), args.images) if args.images else len(paths)
    paths = sorted(paths)[:total]
    sampler = Sampler(args.warmup_images, args.sample_every_image, total, "image")
    sampler.sample(0)
    predict, done = pipeline.predict, [0]
    deadline = time.perf_counter() + args.minutes * 60 if args.minutes else None
    stopped = [False]

    def counted(image, *a, **kw):  # the probe: counts, samples, and calls the real method
        if deadline is not None and time.perf_counter() > deadline:
            stopped[0] = True
            sampler.sample(done[0])
            raise KeyboardInterrupt  # what Ctrl-C does: the batch ends, its files kept (exit status 130)
        result = predict(image, *a, **kw)
        done[0] += 1
        if done[0] == total:  # the end, while the batch's state (outputs, summary) is alive
            sampler.sample(done[0])
        else:
            sampler.tick(done[0])
        return result

    pipeline.predict = counted
    with tempfile.TemporaryDirectory(prefix="dermedge-long-run-") as tmp:
        jsonl, csv_out = Path(tmp) / "predictions.jsonl", Path(tmp) / "predictions.csv"
        status = predict_files(pipeline, [str(p) for p in paths], None, csv_out, None, jsonl_out=jsonl)
        lines = sum(1 for _ in open(jsonl))
        sizes = {"jsonl_mb": round(jsonl.stat().st_size / 2**20, 2), "csv_mb": round(csv_out.stat().st_size / 2**20, 2)}
    figures = sampler.figures(done[0])
    figures.update({"target": total, "stopped_by_time_budget": stopped[0], "time_budget_min": args.minutes,
                    "variant": pipeline.variant, "threads": pipeline.num_threads, "backend": pipeline.backend,
                    "images_dir": str(args.images_dir), "images_found": len(paths) + len(problems),
                    "exit_status": status, "jsonl_lines": lines, "outputs": sizes})
    return figures


# -- the report --------------------------------------------------------------------------------------

def code() -> dict:
    """Where the measured code was imported from, and its commit when that is a git checkout."""
    import edge_runtime

    root = Path(edge_runtime.__file__).resolve().parent.parent
    out = {"edge_runtime": str(Path(edge_runtime.__file__).parent), "commit": None, "modified": None}
    try:
        out["commit"] = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                       check=True).stdout.strip()
        out["modified"] = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "edge_runtime", "commands",
                                          "dermedge"], capture_output=True, text=True, check=True).stdout.split("\n")
        out["modified"] = [line for line in out["modified"] if line.strip()]
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Long runs: memory and throughput",
        "",
        f"{report['created']}; {m.get('cpu')} ({m.get('logical_cores')} logical cores), {m.get('os')}, "
        f"Python {m.get('python')}; niceness {report['niceness']}; 1-min load average "
        f"{report['load_average_1min'][0]} at the start, {report['load_average_1min'][1]} at the end.",
    ]
    if report.get("note"):
        lines += ["", report["note"]]
    lines += [
        "",
        "| part | count | variant, threads | peak RSS after warm-up → end (MB) | growth (MB) | current RSS "
        "after warm-up → end (MB) | throughput after warm-up | CPU time each after warm-up | wall time "
        "| RSS ≤ +10 MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, unit in (("stream", "frames/s"), ("predict", "images/s")):
        r = report.get(name)
        if not r:
            continue
        s, e = r["start"], r["end"]
        rate = "–" if r["per_s_after_warmup"] is None else f"{r['per_s_after_warmup']:.1f} {unit}"
        cpu = r.get("cpu_ms_each_after_warmup")  # absent from reports made before it was measured
        cpu = "–" if cpu is None else f"{cpu:.1f} ms"
        count = f"{r['count']:,}" + ("" if r["count"] >= r["target"] else f" of {r['target']:,} (time budget)")
        lines.append(f"| {name} | {count}, warm-up {r['warmup']:,} | {r['variant']}, {r['threads']} "
                     f"| {s['peak_rss_mb']:.1f} → {e['peak_rss_mb']:.1f} | {r['peak_rss_growth_mb']:+.1f} "
                     f"| {s['rss_mb']:.1f} → {e['rss_mb']:.1f} | {rate} | {cpu} "
                     f"| {r['wall_s'] / 60:.1f} min | {'held' if r['passed'] else 'NOT held'} |")
    st = report.get("stream")
    if st:
        ss = st["stream_summary"]
        lines += ["", f"- stream: {st['frame_size'][0]}x{st['frame_size'][1]} frames drawn on the fly, "
                  f"{st['lesions_drawn']:,} lesions drawn, {st['lesions_seen']:,} lesions seen by the tracker; "
                  f"{ss['analysed']:,} frames analysed, {ss['rejected_total']:,} rejected "
                  f"({', '.join(f'{k} {v:,}' for k, v in ss['rejected'].items())}), {ss['dropped']} dropped; "
                  f"{ss['alerts']:,} alerts (threshold {st['alert_threshold']:g}); events {', '.join(f'{k} {v:,}' for k, v in st['events'].items())}; "
                  f"inference p50 / p90 {ss['inference_ms']['p50']:.1f} / {ss['inference_ms']['p90']:.1f} ms."]
    pr = report.get("predict")
    if pr:
        lines += [f"- predict: `predict_files` (`dermedge predict DIR --jsonl F --csv F`) over {pr['count']:,} "
                  f"JPEGs of `{pr['images_dir']}`; exit status {pr['exit_status']}, {pr['jsonl_lines']:,} JSONL "
                  "lines."]
    lines += ["", "Pass: peak RSS (`ru_maxrss`) at the end minus peak RSS after the warm-up ≤ "
              f"{GROWTH_LIMIT_MB:g} MB, for each part, each in its own process.", "",
              f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"


def children(parts: list[str], args, argv: list[str], tmp: Path) -> dict:
    """Run each part in a fresh interpreter (one after the other, or side by side with --parallel)
    and read back their figures."""
    def start(part: str) -> tuple[subprocess.Popen, Path]:
        result = tmp / f"{part}.json"
        command = [sys.executable, os.path.abspath(__file__), *argv, "--part", part, "--result", str(result)]
        if part == "predict":
            command += ["--images-dir", str(args.images_dir)]
        return subprocess.Popen(command), result

    running = {}
    for part in parts:
        running[part] = start(part)
        if not args.parallel:
            running[part][0].wait()
    figures = {}
    for part, (process, result) in running.items():
        code = process.wait()
        if code != 0 or not result.is_file():
            print(f"the {part} part failed (exit status {code})", file=sys.stderr)
            continue
        figures[part] = json.loads(result.read_text())
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000, help="Stream frames (0: skip the stream).")
    parser.add_argument("--images", type=int, default=10_000, help="Images for predict (0: skip predict).")
    parser.add_argument("--variant", default=None, help="Bundle variant (default: the bundle's).")
    parser.add_argument("--threads", type=int, default=1, help="Interpreter threads.")
    parser.add_argument("--size", default="640x480", help="Stream frame size.")
    parser.add_argument("--image-size", default="600x450", help="Size of the drawn JPEGs for predict.")
    parser.add_argument("--images-dir", type=Path, default=None,
                        help="Predict on this folder's images (e.g. HAM10000) instead of drawn ones.")
    parser.add_argument("--warmup-frames", type=int, default=1000)
    parser.add_argument("--warmup-images", type=int, default=1000)
    parser.add_argument("--sample-every", type=int, default=5000, help="Stream frames between RSS samples.")
    parser.add_argument("--sample-every-image", type=int, default=1000, help="Images between RSS samples.")
    parser.add_argument("--alert-threshold", type=float, default=0.08,
                        help="The stream's alert threshold (`dermedge stream --alert-threshold`). Drawn lesions read "
                             "malignant 0.00-0.12, under the bundle's 0.31: at 0.08 a share of them alert, so the "
                             "alert path runs.")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="Trace Python allocations (slower): the sources of heap growth after the warm-up.")
    parser.add_argument("--minutes", type=float, default=None,
                        help="Time budget of each part: the stream ends (as at the end of a file) and the batch "
                             "stops (as on Ctrl-C) when it runs out; the report gives the count reached.")
    parser.add_argument("--parallel", action="store_true",
                        help="Run the two parts side by side (each still in its own process).")
    parser.add_argument("--note", default="", help="A sentence for the report (e.g. what else ran).")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/long_run"))
    parser.add_argument("--part", choices=("stream", "predict"), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    if args.part:  # a child: one part, its figures to --result
        if args.tracemalloc:
            tracemalloc.start()
        figures = run_stream_part(args) if args.part == "stream" else run_predict_part(args)
        args.result.write_text(json.dumps(figures))
        return 0

    report = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": shlex.join(["python", "benchmarks/long_run.py", *argv]), "note": args.note,
              "niceness": os.nice(0), "code": code(), "machine": machine_info(measure_peak=False), "growth_limit_mb": GROWTH_LIMIT_MB}
    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    parts = [part for part, n in (("predict", args.images), ("stream", args.frames)) if n]
    with tempfile.TemporaryDirectory(prefix="dermedge-long-run-") as tmp:
        drawn = args.images and args.images_dir is None
        if drawn:
            width, height = (int(v) for v in args.image_size.lower().split("x"))
            args.images_dir = Path(tmp) / "images"
            write_images(args.images_dir, args.images, width, height)
        report.update(children(parts, args, argv, Path(tmp)))
        if drawn and "predict" in report:
            report["predict"]["images_dir"] = f"drawn lesions, {width}x{height} JPEG quality 90 (temporary)"
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    report["load_average_1min"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    report["passed"] = all(p in report and report[p]["passed"] for p in parts)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "long_run.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "long_run.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
