"""`dermedge benchmark`: every variant of a bundle side by side, against the Keras float originals.

What a variant costs and buys, measured in one run so the ratios hold on a noisy machine:
- size (bytes, gzip), parameters, weight sparsity and MACs, read from the files themselves;
- task metrics and agreement with the float models on labelled data, through the deployed path
  (U-Net mask -> crop -> classifier), the same code `predict` runs;
- latency per stage and end to end on the same decoded images, variants interleaved in blocks
  after warm-up; FPS; achieved MAC/s against the CPU's peak;
- model load time and peak resident memory, each variant in a fresh child process (a process'
  high-water mark cannot be reset, so in-process figures would only ever grow).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from dermedge.commands.batch import Skipped, progress_bar
from dermedge.commands.benchmark_config import BenchmarkConfig
from dermedge.datasets import images_by_stem, masks_by_image_id, read_mask
from dermedge.errors import DermedgeError
from dermedge.export.formats import (FLOAT_REFERENCE, INTEGER_QUANTIZATIONS, MIXED_QUANTIZATION, PREFERRED_DEFAULT,
                                     VARIANTS)
from dermedge.commands.machine import machine_info
from dermedge.metrics import dice, paired_difference_interval
from dermedge.commands.model_stats import model_stats
from edge_runtime.bundle import Bundle, load_bundle
from edge_runtime.image_io import ImageError, read_image
from edge_runtime.pipeline import Pipeline
from edge_runtime.synthetic import draw_lesion

KERAS = "keras"  # model.predict: the documented Keras inference call
KERAS_GRAPH = "keras-graph"  # one compiled tf.function: TensorFlow's fastest float path
KERAS_ROWS = {KERAS: "predict", KERAS_GRAPH: "graph"}
TTA_SUFFIX = "+tta"  # a variant run with test-time augmentation (4 views per crop)
STAGES = ("segment", "crop", "classify", "total")  # `crop`: mask clean-up, quality gate and crop (CPU)
BLOCK = 10  # consecutive runs of one variant before the next takes its turn
TARGETS = {"speedup_vs_keras": 10.0, "speedup_vs_fp32": 1.3, "p50_ms": 15.0}  # issue 5, at 1 thread


def percentiles(values) -> dict:
    """p50/p90/p99 (linear interpolation, numpy's default) and mean, in the unit given."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no values to summarise")
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(values.mean()), "n": int(values.size)}


# --- inputs -----------------------------------------------------------------------------------

@dataclass
class LabelledData:
    """Decoded images held in memory (every variant sees the same pixels), with what is known of them."""

    ids: list[str]
    images: list[np.ndarray]
    targets: list[str] | None = None  # class names
    masks: list[np.ndarray | None] = field(default_factory=list)
    skipped: Skipped = field(default_factory=Skipped)


def load_data(config: BenchmarkConfig, console: Console) -> LabelledData | None:
    if config.images is None:
        if config.labels or config.masks:
            raise DermedgeError("--labels and --masks need --images")
        return None
    from dermedge.datasets import read_label_table

    files = images_by_stem(Path(config.images))
    table = read_label_table(config.labels, config.split) if config.labels else None
    if table is not None and table.binary:
        raise DermedgeError("benchmark needs class labels (HAM10000, ISIC one-hot or split.csv), not a binary CSV")
    ids = table.ids if table else sorted(files)
    if config.limit:
        ids = ids[:config.limit]
    mask_files = masks_by_image_id(Path(config.masks)) if config.masks else {}
    data = LabelledData([], [], [] if table else None)
    target_of = dict(zip(table.ids, table.targets)) if table else {}
    with progress_bar(console) as progress:
        task = progress.add_task("reading images", total=len(ids))
        for image_id in ids:
            progress.advance(task)
            if image_id not in files:
                data.skipped.add(image_id, f"no image file for it in {config.images}")
                continue
            try:
                image = read_image(files[image_id])
            except ImageError as exc:
                data.skipped.add(files[image_id], str(exc))
                continue
            mask = read_mask(mask_files[image_id]) if image_id in mask_files else None
            if mask is not None and mask.shape != image.shape[:2]:
                mask = None
            data.ids.append(image_id)
            data.images.append(image)
            data.masks.append(mask)
            if data.targets is not None:
                data.targets.append(target_of[image_id])
    if not data.images:
        raise DermedgeError(f"no readable image among {len(ids)} in {config.images}")
    return data


def latency_inputs(data: LabelledData | None, count: int) -> list[np.ndarray]:
    """The images every variant is timed on: the first labelled ones, else drawn lesions."""
    if data is not None:
        return data.images[:count]
    rng = np.random.default_rng(0)
    return [draw_lesion(rng, class_index=i)[0] for i in range(count)]


# --- the models ---------------------------------------------------------------------------------

def select_variants(bundle: Bundle, wanted: list[str] | None) -> list[str]:
    names = list(bundle.variants)
    if not wanted:
        return names
    unknown = [w for w in wanted if w not in names and w not in KERAS_ROWS]
    if unknown:
        raise DermedgeError(f"variant(s) {', '.join(unknown)} not in the bundle; it has: {', '.join(names)}")
    return [n for n in names if n in wanted]


def keras_pipelines(config: BenchmarkConfig, bundle: Bundle, threads: int, console: Console) -> tuple[dict, str]:
    """({row name: Pipeline around the Keras originals}, note); empty with the reason when unavailable."""
    if not config.keras:
        return {}, "not requested"
    missing = [str(p) for p in (config.keras_segmenter, config.keras_classifier) if not Path(p).is_file()]
    if missing:
        return {}, f"no Keras models at {', '.join(missing)}"
    try:
        from dermedge.train.tf_env import tensorflow

        tf = tensorflow()
    except ImportError:
        return {}, 'TensorFlow not installed (pip install "dermedge[train]")'
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        note = f"TensorFlow intra-op threads {threads}"
    except RuntimeError:  # TensorFlow already started in this process (tests): its own thread pool
        note = "TensorFlow's default threads (already initialised)"
    from dermedge.train.models import KerasModel, load_trained_model

    segmenter = load_trained_model(config.keras_segmenter, "segmenter")
    classifier = load_trained_model(config.keras_classifier, "classifier")
    console.print(f"keras baseline: {config.keras_segmenter}, {config.keras_classifier} ({note})", highlight=False)
    pipelines = {name: Pipeline.from_models(bundle, name, KerasModel(segmenter, call), KerasModel(classifier, call))
                 for name, call in KERAS_ROWS.items()}
    return pipelines, f"{note}; {KERAS} = model.predict per image, {KERAS_GRAPH} = compiled tf.function"


# --- measurements -------------------------------------------------------------------------------

def measure_latency(pipelines: dict[str, Pipeline], inputs: list[np.ndarray], runs: int, warmup: int,
                    console: Console) -> dict[str, dict]:
    """Per variant and stage, percentiles of `runs` timed calls, the variants taking turns in blocks."""
    times = {name: {stage: [] for stage in STAGES} for name in pipelines}
    for pipeline in pipelines.values():
        for i in range(warmup):
            pipeline.predict(inputs[i % len(inputs)])
    with progress_bar(console) as progress:
        task = progress.add_task("timing", total=runs * len(pipelines))
        for start in range(0, runs, BLOCK):
            for name, pipeline in pipelines.items():
                for i in range(start, min(start + BLOCK, runs)):
                    latency = pipeline.predict(inputs[i % len(inputs)]).latency_ms
                    for stage in STAGES:
                        times[name][stage].append(latency[stage])
                    progress.advance(task)
    return {name: {stage: percentiles(values) for stage, values in stages.items()} for name, stages in times.items()}


def score(pipeline: Pipeline, data: LabelledData, console: Console) -> tuple[np.ndarray, list[np.ndarray]]:
    """Class probabilities and deployed masks for every image."""
    probabilities, masks = [], []
    with progress_bar(console) as progress:
        task = progress.add_task(f"scoring {pipeline.variant}{TTA_SUFFIX if pipeline.tta else ''}",
                                 total=len(data.images))
        for image in data.images:
            result = pipeline.predict(image)
            probabilities.append([result.probabilities[c] for c in pipeline.labels])
            masks.append(result.mask)
            progress.advance(task)
    return np.asarray(probabilities, np.float32), masks


def task_metrics(pipeline: Pipeline, data: LabelledData, probabilities: np.ndarray, masks: list[np.ndarray],
                 reference: tuple[np.ndarray, list[np.ndarray]] | None) -> dict:
    out: dict = {}
    pairs = [(m, t) for m, t in zip(masks, data.masks) if t is not None]
    if pairs:
        from dermedge.metrics import segmentation_metrics

        seg = segmentation_metrics(pairs)
        out.update({"dice": seg["dice"], "iou": seg["iou"]})
    index = {c: i for i, c in enumerate(pipeline.labels)}
    known = [i for i, t in enumerate(data.targets or []) if t in index]  # images with a usable label
    y = np.array([index[data.targets[i]] for i in known])
    if known:
        from dermedge.metrics import classification_metrics

        # a small --limit leaves classes absent: the metrics expect that and do not warn
        cls = classification_metrics(y, probabilities[known], pipeline.labels,
                                     frozenset(pipeline.malignant_labels), pipeline.malignant_threshold)
        out.update({"balanced_accuracy": cls["balanced_accuracy"],
                    "balanced_accuracy_ci95": cls["balanced_accuracy_ci95"], "macro_auc": cls["macro_auc"],
                    "melanoma_sensitivity": cls.get("melanoma", {}).get("sensitivity"),
                    "malignant_sensitivity": cls.get("malignant", {}).get("sensitivity"),
                    "malignant_specificity": cls.get("malignant", {}).get("specificity")})
    if reference is not None:
        ref_probs, ref_masks = reference
        out["top1_agreement"] = float((probabilities.argmax(1) == ref_probs.argmax(1)).mean())
        if known:  # paired: the same images for both, so the sample's luck cancels
            out["balanced_accuracy_vs_float_ci95"] = paired_difference_interval(
                y, probabilities[known].argmax(1), ref_probs[known].argmax(1), len(pipeline.labels))
        out["mask_dice_vs_float"] = float(np.mean([dice(m, r) for m, r in zip(masks, ref_masks)]))
    return out


_PROBE = """
import json, sys
from dermedge.commands.benchmark import probe_child
print(json.dumps(probe_child(*json.loads(sys.argv[1]))))
"""


def probe_child(bundle: str | None, variant: str | None, threads: int, keras_paths: list[str] | None = None) -> dict:
    """Run in a fresh process: load one variant (or the Keras pair), run 5 images, report load time
    and peak resident memory. With `variant` None it only imports, giving the baseline."""
    image = draw_lesion(np.random.default_rng(0))[0]
    start = time.perf_counter()
    if keras_paths:  # the load time includes importing TensorFlow, as it would on a device
        from dermedge.train.models import KerasModel, load_trained_model

        bundle_obj = load_bundle(bundle)
        call = KERAS_ROWS[variant]
        pipeline = Pipeline.from_models(bundle_obj, variant,
                                        KerasModel(load_trained_model(keras_paths[0], "segmenter"), call),
                                        KerasModel(load_trained_model(keras_paths[1], "classifier"), call))
    elif variant:
        pipeline = Pipeline.load(bundle, variant, threads)
    else:
        pipeline = None
    load_ms = (time.perf_counter() - start) * 1e3
    for _ in range(5 if pipeline else 0):
        pipeline.predict(image)
    return {"load_ms": load_ms, "peak_rss_mb": peak_resident_mb()}


def peak_resident_mb() -> float:
    """This process' peak resident memory. Linux: VmHWM, which starts afresh at exec (ru_maxrss
    would carry the parent's high-water mark into the child). Elsewhere ru_maxrss."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource  # POSIX only; the probe is skipped where it fails

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def probe(bundle: Path | None, variant: str | None, threads: int, keras_paths: list[str] | None = None) -> dict | None:
    args = json.dumps([str(bundle) if bundle else None, variant, threads, keras_paths])
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, args], capture_output=True, text=True, timeout=600)
        return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


# --- rows ---------------------------------------------------------------------------------------

def _gzip_size(content: bytes) -> int:
    return len(gzip.compress(content, 9))


def file_rows(bundle: Bundle, names: list[str]) -> dict[str, dict]:
    """Per variant: format, bytes, gzip bytes, and for TFLite parameters, sparsity and MACs."""
    rows = {}
    for name in names:
        info = bundle.variants[name]
        row = {"variant": name, "format": info["format"], "quantization": info.get("quantization"),
               "bytes": 0, "files": {}}
        for role in ("segmenter", "classifier"):
            record = info["files"][role]
            row["files"][role] = {"bytes": record["bytes"]}
            row["bytes"] += record["bytes"]
            if info["format"] == "tflite":
                content = bundle.read(name, role)
                row["files"][role].update({"gzip_bytes": _gzip_size(content), **model_stats(content).as_dict()})
        if info["format"] == "tflite":
            row["gzip_bytes"] = sum(f["gzip_bytes"] for f in row["files"].values())
            row["parameters"] = sum(f["parameters"] for f in row["files"].values())
            row["macs"] = {role: f["macs"] for role, f in row["files"].items()}
            row["macs"]["total"] = sum(row["macs"].values())
        rows[name] = row
    return rows


def keras_file_row(config: BenchmarkConfig, keras: Pipeline, like: dict | None) -> dict:
    row = {"variant": keras.variant, "format": "keras", "quantization": "none (float32)", "bytes": 0, "files": {}}
    params = 0
    for role, path, model in (("segmenter", config.keras_segmenter, keras.segmenter),
                              ("classifier", config.keras_classifier, keras.classifier)):
        content = Path(path).read_bytes()
        kernels = [w.numpy() for w in model.model.weights if "kernel" in w.name]
        total = sum(k.size for k in kernels)
        row["files"][role] = {"bytes": len(content), "gzip_bytes": _gzip_size(content),
                              "parameters": int(model.model.count_params()),
                              "weight_sparsity": round(sum(int((k == 0).sum()) for k in kernels) / max(total, 1), 4)}
        row["bytes"] += len(content)
        params += row["files"][role]["parameters"]
    row["gzip_bytes"] = sum(f["gzip_bytes"] for f in row["files"].values())
    row["parameters"] = params
    if like:  # same graph as the fp32 export; BatchNorm folding does not change conv MACs
        row["macs"] = dict(like["macs"])
    return row


def _achieved(row: dict, stages: dict, machine: dict) -> None:
    """MAC/s of the two model stages, against the peak of the arithmetic the variant uses."""
    if "macs" not in row:
        return
    seconds = (stages["segment"]["p50"] + stages["classify"]["p50"]) / 1e3
    views = 4 if row.get("tta") else 1  # test-time augmentation classifies four views
    gmacs = (row["macs"]["segmenter"] + views * row["macs"]["classifier"]) / seconds / 1e9
    row["gmacs_per_s"] = round(gmacs, 2)
    peak = (machine.get("peak") or {}).get("theoretical")
    if peak:
        kind = "int8" if row.get("quantization") in INTEGER_QUANTIZATIONS else "fp32"
        per_core = peak[f"{kind}_gmacs_per_core"]
        row["peak_fraction"] = {"of": f"{kind} theoretical, {row['threads']} core(s)",
                                "value": round(gmacs / (per_core * row["threads"]), 4)}
    sgemm = (machine.get("peak") or {}).get("measured_sgemm_gmacs_1_thread")
    if sgemm:
        row["vs_measured_sgemm"] = round(gmacs / (sgemm * row["threads"]), 4)


def run_benchmark(config: BenchmarkConfig, console: Console) -> dict:
    bundle = load_bundle(config.bundle)
    names = select_variants(bundle, config.variants)
    tflite = [n for n in names if bundle.variants[n]["format"] == "tflite"]
    if not tflite:
        raise DermedgeError("no TFLite variant selected: nothing to time")
    unknown_tta = [v for v in config.tta if v not in tflite]
    if unknown_tta:
        raise DermedgeError(f"--tta {', '.join(unknown_tta)}: not among the TFLite variants timed ({', '.join(tflite)})")

    def runtime_pipelines(threads: int) -> dict[str, Pipeline]:
        """Every TFLite variant, then the `<variant>+tta` rows asked for."""
        pipelines = {n: Pipeline(bundle, n, threads) for n in tflite}
        pipelines.update({f"{n}{TTA_SUFFIX}": Pipeline(bundle, n, threads, tta=True) for n in config.tta})
        return pipelines

    machine = machine_info()
    data = load_data(config, console)
    inputs = latency_inputs(data, config.latency_images)
    statics = file_rows(bundle, names)
    keras, keras_note = keras_pipelines(config, bundle, min(config.threads), console) \
        if (not config.variants or set(KERAS_ROWS) & set(config.variants)) else ({}, "not requested")
    if config.variants and keras:
        keras = {name: p for name, p in keras.items() if name in config.variants}

    accuracy: dict[str, dict] = {}
    reference_name = None
    if data is not None:
        scored = runtime_pipelines(config.threads[0])
        if keras:  # both Keras rows compute the same numbers: score the fast one
            scored = {KERAS_GRAPH: keras.get(KERAS_GRAPH) or next(iter(keras.values())), **scored}
        reference_name = KERAS_GRAPH if keras else (FLOAT_REFERENCE if FLOAT_REFERENCE in scored else None)
        outputs = {name: score(p, data, console) for name, p in scored.items()}
        reference = outputs.get(reference_name)
        for name, (probs, masks) in outputs.items():
            accuracy[name] = task_metrics(scored[name], data, probs, masks, reference)
        for name in keras:
            accuracy[name] = accuracy[KERAS_GRAPH]
        if reference_name == KERAS_GRAPH:
            reference_name = "keras (float)"

    rows = []
    for threads in config.threads:
        pipelines = runtime_pipelines(threads)
        if keras and threads == min(config.threads):
            pipelines = {**keras, **pipelines}
        console.print(f"timing {len(pipelines)} variant(s) at {threads} thread(s): {config.warmup} warm-up + "
                      f"{config.runs} runs each, interleaved in blocks of {BLOCK}", highlight=False)
        latency = measure_latency(pipelines, inputs, config.runs, config.warmup, console)
        for name, stages in latency.items():
            if name in KERAS_ROWS:
                static = keras_file_row(config, keras[name], statics.get(FLOAT_REFERENCE))
            else:
                static = {**statics[name.removesuffix(TTA_SUFFIX)], "tta": name.endswith(TTA_SUFFIX)}
            row = {**static, "variant": name, "threads": threads, "latency_ms": {**stages["total"], "stages": stages},
                   "fps": round(1e3 / stages["total"]["mean"], 1), "metrics": accuracy.get(name, {})}
            _achieved(row, stages, machine)
            rows.append(row)
    for name in names:
        if name not in tflite:
            rows.append({**statics[name], "threads": None, "latency_ms": None,
                         "note": "size only: Core ML runs on Apple devices"})
    _speedups(rows)
    if config.memory:
        _memory(rows, config, console)
    return {
        "bundle": str(bundle.root), "machine": machine,
        "settings": {"threads": list(config.threads), "runs": config.runs, "warmup": config.warmup,
                     "block": BLOCK, "latency_images": len(inputs),
                     "latency_inputs": "labelled images" if data else "drawn synthetic lesions",
                     "images": len(data.images) if data else 0, "agreement_reference": reference_name,
                     "keras": keras_note},
        "rows": rows,
        "quantization_error": quantization_error(bundle),
        "keep_float_effect": keep_float_effect(rows),
        "targets": target_checks(rows, bundle.default_variant),
        "skipped": data.skipped.as_list() if data else [],
    }


def _speedups(rows: list[dict]) -> None:
    """End-to-end p50 speed-up against the fp32 row of the same thread count and the Keras rows."""
    by_key = {(r["variant"], r["threads"]): r for r in rows if r.get("latency_ms")}
    keras_rows = {r["variant"]: r for r in rows if r["variant"] in KERAS_ROWS and r.get("latency_ms")}
    for row in by_key.values():
        p50 = row["latency_ms"]["p50"]
        speedup = {}
        base = by_key.get((FLOAT_REFERENCE, row["threads"]))
        if base:
            speedup["vs_fp32"] = round(base["latency_ms"]["p50"] / p50, 2)
        for name, key in ((KERAS, "vs_keras"), (KERAS_GRAPH, "vs_keras_graph")):
            if name in keras_rows:
                speedup[key] = round(keras_rows[name]["latency_ms"]["p50"] / p50, 2)
        if keras_rows:
            speedup["keras_threads"] = next(iter(keras_rows.values()))["threads"]
        row["speedup"] = speedup


def _memory(rows: list[dict], config: BenchmarkConfig, console: Console) -> None:
    wanted = {(r["variant"], r["threads"]) for r in rows if r.get("latency_ms")}
    baseline = probe(config.bundle, None, 1)
    with progress_bar(console) as progress:
        task = progress.add_task("load time and memory", total=len(wanted))
        for row in rows:
            if (row["variant"], row["threads"]) not in wanted:
                continue
            keras_paths = ([str(config.keras_segmenter), str(config.keras_classifier)]
                           if row["variant"] in KERAS_ROWS else None)
            found = probe(config.bundle, row["variant"].removesuffix(TTA_SUFFIX), row["threads"], keras_paths)
            if found:
                row["load_ms"] = round(found["load_ms"], 1)
                row["peak_rss_mb"] = round(found["peak_rss_mb"], 1)
                if baseline:
                    row["rss_over_baseline_mb"] = round(found["peak_rss_mb"] - baseline["peak_rss_mb"], 1)
            progress.advance(task)


def quantization_error(bundle: Bundle) -> dict:
    """The QuantizationDebugger figures export recorded: worst int8 tensors per model, and which the
    mixed variant kept in float."""
    out = {}
    for name, info in bundle.variants.items():
        for role in ("segmenter", "classifier"):
            conversion = info.get("metrics", {}).get(role, {}).get("conversion") or {}
            if conversion.get("worst_int8_layers"):
                out.setdefault(name, {})[role] = {
                    "worst_int8_layers": conversion["worst_int8_layers"][:5],
                    "float_layers": conversion.get("float_layers", []),
                }
    return out


def keep_float_effect(rows: list[dict]) -> dict | None:
    """What keeping the worst tensors in float (int8-mixed) bought over its plain int8 baseline, and what it cost."""
    first = {}
    for row in rows:
        if row.get("latency_ms"):
            first.setdefault(row["variant"], row)
    variant = next(v for v in VARIANTS if v.quantization == MIXED_QUANTIZATION)
    mixed, plain = first.get(variant.name), first.get(variant.baseline)
    if not (mixed and plain):
        return None

    def delta(key: str) -> str | None:
        a, b = mixed["metrics"].get(key), plain["metrics"].get(key)
        return f"{b:.3f} -> {a:.3f} ({a - b:+.3f})" if a is not None and b is not None else None

    a, b = mixed["latency_ms"]["p50"], plain["latency_ms"]["p50"]
    return {"variant": variant.name, "top1_agreement": delta("top1_agreement"),
            "balanced_accuracy": delta("balanced_accuracy"), "p50_ms": f"{b:.2f} -> {a:.2f} ({a - b:+.2f})"}


def target_checks(rows: list[dict], default_variant: str) -> list[dict]:
    """Issue targets at one thread, for the plain int8 variant and the default, when integer: speed-up
    vs Keras and fp32, p50."""
    checks = []
    for row in rows:
        if row["threads"] != 1 or not row.get("latency_ms") or row.get("quantization") not in INTEGER_QUANTIZATIONS \
                or row["variant"] not in (PREFERRED_DEFAULT, default_variant):
            continue
        speedup = row.get("speedup", {})
        for key, target, value, better in (
                ("speedup_vs_keras", TARGETS["speedup_vs_keras"], speedup.get("vs_keras"), "min"),
                ("speedup_vs_keras_graph", TARGETS["speedup_vs_keras"], speedup.get("vs_keras_graph"), "min"),
                ("speedup_vs_fp32", TARGETS["speedup_vs_fp32"], speedup.get("vs_fp32"), "min"),
                ("p50_ms", TARGETS["p50_ms"], row["latency_ms"]["p50"], "max")):
            if value is None:
                continue
            met = value >= target if better == "min" else value <= target
            checks.append({"variant": row["variant"], "check": key, "value": round(value, 2), "target": target,
                           "met": bool(met)})
    return checks
