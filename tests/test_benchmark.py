"""`dermedge benchmark`: percentiles, MAC counting, and the whole command on the tiny bundle.

Nothing here asserts on speed: only that every figure is there, consistent, and computed right.
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from dermedge.commands.benchmark import STAGES, measure_latency, percentiles
from dermedge.commands.cli import app

runner = CliRunner()


@pytest.mark.runtime
def test_percentiles_match_the_definition():
    summary = percentiles(range(1, 101))
    assert summary == {"p50": 50.5, "p90": pytest.approx(90.1), "p99": pytest.approx(99.01), "mean": 50.5, "n": 100}
    assert percentiles([7.0])["p99"] == 7.0
    with pytest.raises(ValueError):
        percentiles([])


class _FakePipeline:
    """Reports a known latency sequence, so the bookkeeping of interleaved timing can be checked."""

    def __init__(self, totals):
        self.totals, self.calls = list(totals), 0

    def predict(self, image):
        total = self.totals[self.calls % len(self.totals)]
        self.calls += 1
        return SimpleNamespace(latency_ms={"segment": total / 2, "crop": 0.1, "classify": total / 4, "total": total})


@pytest.mark.runtime
def test_measure_latency_skips_warmup_and_keeps_variants_apart():
    warmup, runs = 3, 25
    slow = _FakePipeline([1000.0] * warmup + list(np.arange(runs, dtype=float)))  # warm-up values must vanish
    fast = _FakePipeline([1.0])
    result = measure_latency({"slow": slow, "fast": fast}, [np.zeros((4, 4, 3), np.uint8)], runs, warmup,
                             Console(quiet=True))
    assert slow.calls == fast.calls == warmup + runs
    assert set(result["slow"]) == set(STAGES)
    expected = np.percentile(np.arange(runs), [50, 90, 99])
    assert [result["slow"]["total"][k] for k in ("p50", "p90", "p99")] == pytest.approx(expected)
    assert result["slow"]["segment"]["p50"] == pytest.approx(expected[0] / 2)
    assert result["fast"]["total"]["p99"] == 1.0 and result["fast"]["total"]["n"] == runs


def test_model_stats_counts_parameters_macs_and_zeros(tmp_path):
    tf = pytest.importorskip("tensorflow")
    from dermedge.commands.model_stats import model_stats

    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 3)),
        tf.keras.layers.Conv2D(4, 3, padding="same"),  # 8*8 positions x 4 out x 3*3*3 = 6,912 MACs
        tf.keras.layers.DepthwiseConv2D(3, padding="same"),  # 8*8 x 3*3 x 4 = 2,304 MACs
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(5),  # 4 x 5 = 20 MACs
    ])
    rng = np.random.default_rng(0)
    for layer in (model.layers[0], model.layers[1], model.layers[3]):  # distinct non-zero biases: none deduplicated
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel, rng.uniform(0.1, 1.0, bias.shape).astype(np.float32)])
    kernel, bias = model.layers[0].get_weights()
    kernel[..., :2] = 0  # half the first conv's filters zeroed
    model.layers[0].set_weights([kernel, bias])
    content = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    stats = model_stats(content)
    assert stats.macs == 6912 + 2304 + 20
    assert stats.parameters == model.count_params() + 2  # + the MEAN op's two axis values
    zeros = 3 * 3 * 3 * 2 + int((model.layers[1].get_weights()[0] == 0).sum()) + int((model.layers[3].get_weights()[0] == 0).sum())
    assert stats.weight_sparsity == pytest.approx(zeros / (108 + 36 + 20))


def test_benchmark_on_the_tiny_bundle(tiny_bundle, tiny_runs, ham_dir, tmp_path):
    from conftest import has_coreml

    variants = ["keras", "keras-graph", "fp32", "int8", "int8-mixed"] + (["coreml"] if has_coreml() else [])
    out_json, out_md, plots = tmp_path / "b.json", tmp_path / "b.md", tmp_path / "plots"
    result = runner.invoke(app, [
        "benchmark", "--bundle", str(tiny_bundle), "--variants", ",".join(variants), "--threads", "1,2",
        "--runs", "12", "--warmup", "2", "--images", str(ham_dir / "images"), "--masks", str(ham_dir / "masks"),
        "--labels", str(ham_dir / "HAM10000_metadata.csv"),
        "--keras-segmenter", str(tiny_runs / "segment" / "segmenter.keras"),
        "--keras-classifier", str(tiny_runs / "classify" / "classifier.keras"),
        "--json", str(out_json), "--markdown", str(out_md), "--plots", str(plots)])
    assert result.exit_code == 0, result.output
    report = json.loads(out_json.read_text())
    assert {"machine", "settings", "rows", "targets", "quantization_error"} <= set(report)
    assert report["machine"]["logical_cores"] >= 1 and report["machine"]["packages"]["numpy"]
    rows = report["rows"]
    timed = [r for r in rows if r["latency_ms"]]
    # Keras once (at the lowest thread count), every TFLite variant at both thread counts.
    assert sorted((r["variant"], r["threads"]) for r in timed) == sorted(
        [("keras", 1), ("keras-graph", 1)] + [(v, t) for v in ("fp32", "int8", "int8-mixed") for t in (1, 2)])
    for row in timed:
        latency = row["latency_ms"]
        assert {"variant", "format", "bytes"} <= set(row) and row["bytes"] > 0
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
        assert latency["stages"]["total"]["n"] == 12
        assert row["fps"] > 0 and row["load_ms"] > 0 and row["peak_rss_mb"] > 0
        assert 0 <= row["metrics"]["dice"] <= 1 and 0 <= row["metrics"]["balanced_accuracy"] <= 1  # tiny models
        assert row["macs"]["total"] == row["macs"]["segmenter"] + row["macs"]["classifier"] > 0
    keras_row = next(r for r in timed if r["variant"] == "keras")
    assert keras_row["format"] == "keras" and keras_row["metrics"]["top1_agreement"] == 1.0
    assert keras_row["metrics"]["balanced_accuracy_vs_float_ci95"] == [0.0, 0.0]  # compared with itself
    low, high = keras_row["metrics"]["balanced_accuracy_ci95"]
    assert low <= keras_row["metrics"]["balanced_accuracy"] <= high
    fp32 = next(r for r in timed if r["variant"] == "fp32" and r["threads"] == 1)
    assert fp32["metrics"]["top1_agreement"] >= 0.95 and fp32["metrics"]["mask_dice_vs_float"] > 0.99
    assert fp32["speedup"]["vs_fp32"] == 1.0 and fp32["speedup"]["vs_keras"] > 0
    assert fp32["files"]["segmenter"]["gzip_bytes"] > 0
    if has_coreml():
        coreml = next(r for r in rows if r["variant"] == "coreml")
        assert coreml["latency_ms"] is None and coreml["bytes"] > 0
    checks = {(c["variant"], c["check"]) for c in report["targets"]}
    assert ("int8", "speedup_vs_keras") in checks and ("int8", "p50_ms") in checks
    assert all(isinstance(c["met"], bool) for c in report["targets"])
    assert "| variant |" in out_md.read_text() and "keras-graph" in out_md.read_text()
    assert (plots / "accuracy_vs_size.png").stat().st_size > 0 and (plots / "latency.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--threads", "0"], "--threads needs"),
    (["--threads", "one"], "--threads takes whole numbers"),
    (["--variants", "fp64"], "fp64 not in the bundle"),
    (["--labels", "x.csv"], "--labels and --masks need --images"),
])
def test_benchmark_bad_options_give_one_line(tiny_bundle, args, message):
    result = runner.invoke(app, ["benchmark", "--bundle", str(tiny_bundle), "--no-keras", "--no-memory", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
