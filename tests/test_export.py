"""Tiny trained models through every export variant: agreement, sha256, manifest round-trip."""

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("tensorflow")
from dermedge.commands.cli import app  # noqa: E402
from edge_runtime.bundle import load_bundle, sha256_of  # noqa: E402
from dermedge.export.formats import VARIANTS  # noqa: E402

from conftest import has_coreml  # noqa: E402

runner = CliRunner()
HAS_COREML = has_coreml()


def _export(tiny_runs, out, *extra):
    return runner.invoke(app, ["export", "--segmenter", str(tiny_runs / "segment" / "segmenter.keras"),
                               "--classifier", str(tiny_runs / "classify" / "classifier.keras"),
                               "--out", str(out), "--representative", "8", "--agreement-floor", "0",
                               "--fine-tune-epochs", "1", *extra])


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return tiny_bundle


def test_every_variant_is_in_the_manifest_with_checked_files(bundle):
    loaded = load_bundle(bundle)
    expected = {v.name for v in VARIANTS if v.format == "tflite" or HAS_COREML}
    assert set(loaded.variants) == expected
    for name, variant in loaded.variants.items():
        for role in ("segmenter", "classifier"):
            record = variant["files"][role]
            path = bundle / record["path"]
            assert sha256_of(path) == record["sha256"]
            assert loaded.file(name, role).exists()
            if variant["format"] == "tflite":
                assert record["gzip_bytes"] > 0
    m = loaded.manifest
    assert m["labels"] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert m["malignant_labels"] == ["akiec", "bcc", "mel"]
    assert m["dataset"]["licence"] == "CC BY-NC-SA 4.0"
    assert m["training"]["classifier"]["command"]
    assert bundle.with_suffix(".zip").is_file()


def test_tflite_variants_agree_with_keras(bundle):
    m = load_bundle(bundle).manifest
    for name in ("fp32", "fp16", "dynamic"):
        cls = m["variants"][name]["metrics"]["classifier"]
        assert cls["top1_agreement"] >= 0.9, name
        assert m["variants"][name]["metrics"]["segmenter"]["mask_dice_vs_float"] > 0.9, name
    assert m["variants"]["fp32"]["metrics"]["classifier"]["max_prob_diff"] < 1e-3
    # the same decisions as Keras on every image: no difference on any bootstrap resample
    assert m["variants"]["fp32"]["metrics"]["classifier"]["balanced_accuracy_vs_float_ci95"] == [0.0, 0.0]
    for name in ("int8", "qat-int8", "pruned-int8"):
        cls = m["variants"][name]["metrics"]["classifier"]
        assert 0 <= cls["balanced_accuracy"] <= 1 and cls["n"] >= 1
    # The tiny segmenter is barely trained (probabilities near 0.5), so compare probabilities,
    # not thresholded masks: int8 must stay within a few quantization steps of Keras.
    assert m["variants"]["int8"]["metrics"]["segmenter"]["mean_prob_diff"] < 0.05
    assert m["variants"]["fp32"]["metrics"]["segmenter"]["mean_prob_diff"] < 1e-4
    for role in ("segmenter", "classifier"):  # int8 is bias-corrected, int8-mixed and QAT are not
        assert m["variants"]["int8"]["metrics"][role]["conversion"]["bias_correction"]["layers"] > 0
        assert "bias_correction" not in m["variants"]["int8-mixed"]["metrics"][role].get("conversion", {})
        assert "bias_correction" not in m["variants"]["qat-int8"]["metrics"][role].get("conversion", {})


def test_int8_input_normalisation_stays_on_exact_grids():
    """(x - 127) / 128 inside the model: the int8 graph subtracts, then scales, so every tensor
    before the first conv sits on a grid of whole grey levels or of 1/128 (a MUL first put it on
    a grid of 1/85, half a grey level of noise into the stem); in float nothing changes."""
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from dermedge.export.tflite import convert, exact_normalization, representative_from

    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="normalize")(inputs)
    x = tf.keras.layers.Conv2D(4, 3, padding="same", name="stem_conv")(x)
    x = tf.keras.layers.ReLU(6.0)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(x))
    images = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(exact_normalization(model).predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-6)

    interpreter = Interpreter(model_content=convert(model, "int8", representative_from(images))[0])
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    scales = []
    for op in interpreter._get_ops_details():
        if op["op_name"] == "CONV_2D":
            break
        scales += [tensors[i]["quantization"][0] for i in op["outputs"]]
    assert scales and all(min(abs(s - 1.0), abs(s - 1 / 128)) < 1e-9 for s in scales), scales


def test_bias_correction_cancels_the_mean_int8_rounding_error():
    """A conv whose BatchNorm amplifies it 40x (as fine-tuning leaves EfficientNet-Lite0's stem): after
    correction, the int8-rounded weights give the float model's mean pre-activation on the images."""
    import numpy as np
    import tensorflow as tf

    from dermedge.export.bias_correction import bias_corrected

    keras = tf.keras
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="normalize")(inputs)
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(x)
    outputs = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    model.get_layer("conv").set_weights([rng.normal(0, 0.3, (3, 3, 3, 4)).astype(np.float32)])
    model.get_layer("bn").set_weights([np.ones(4, np.float32), np.zeros(4, np.float32),
                                       np.zeros(4, np.float32), np.full(4, 1e-4, np.float32)])
    images = (150 + rng.normal(0, 5, (32, 12, 12, 3))).clip(0, 255).astype(np.float32)  # bright, low contrast

    def rounded(m):  # the same model with its folded weights rounded as TFLite does
        copy = keras.models.clone_model(m)
        copy.set_weights(m.get_weights())
        kernel = copy.get_layer("conv").get_weights()[0]
        gamma, _, _, var = copy.get_layer("bn").get_weights()
        scale = gamma / np.sqrt(var + copy.get_layer("bn").epsilon)
        folded = kernel * scale
        step = np.abs(folded).max(axis=(0, 1, 2)) / 127
        copy.get_layer("conv").set_weights([(np.round(folded / step) * step / scale).astype(np.float32)])
        return copy

    want = model.predict(images, verbose=0).mean(axis=(0, 1, 2))
    plain = rounded(model).predict(images, verbose=0).mean(axis=(0, 1, 2))
    corrected, layers = bias_corrected(model, images)
    fixed = rounded(corrected).predict(images, verbose=0).mean(axis=(0, 1, 2))
    assert layers == 1
    assert np.abs(plain - want).max() > 0.05  # the rounding error this guards against is there
    assert np.abs(fixed - want).max() < 0.1 * np.abs(plain - want).max()
    np.testing.assert_array_equal(model.get_layer("bn").get_weights()[2], np.zeros(4))  # the original is untouched


def test_agreement_floor_fails_loudly(tiny_runs, tmp_path):
    result = _export(tiny_runs, tmp_path / "strict", "--variants", "fp32", "--agreement-floor", "1.01")
    assert result.exit_code == 2
    assert "agreement below the floor" in result.output


def test_int8_takes_uint8_input_and_carries_labels(bundle):
    from edge_runtime.interpreter import TFLiteModel
    from dermedge.export.tflite import read_metadata

    path = load_bundle(bundle).file("int8", "classifier")
    model = TFLiteModel(path)
    assert model.input_dtype.name == "uint8"
    assert model._input["quantization"] == (1.0, 0)  # camera bytes map 1:1, nothing clipped
    meta = read_metadata(path.read_bytes())
    assert meta["labels"] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert meta["input"]["range"] == [0, 255]


def test_pruning_reports_sparsity(bundle):
    variant = load_bundle(bundle).variants["pruned-int8"]
    for role in ("segmenter", "classifier"):
        report = variant["sparsity"][role]
        assert 0.1 < report["total"] <= 0.6
        assert any(v >= 0.45 for v in report["per_layer"].values())


@pytest.mark.skipif(not HAS_COREML, reason="coremltools not installed")
def test_coreml_spec_carries_labels(bundle):
    m = load_bundle(bundle).manifest
    assert m["variants"]["coreml"]["metrics"]["classifier"]["spec_checked"]
    assert m["variants"]["coreml-palette6"]["files"]["classifier"]["bytes"] < \
        m["variants"]["coreml"]["files"]["classifier"]["bytes"]


def test_info_json_shape(bundle):
    result = runner.invoke(app, ["info", "--bundle", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["labels"][4] == "mel"
    int8 = info["variants"]["int8"]
    assert int8["format"] == "tflite"
    assert set(int8["files"]["segmenter"]) >= {"path", "bytes", "sha256"}
    assert "balanced_accuracy" in int8["metrics"]["classifier"]


def test_tampered_file_is_refused(bundle, tmp_path):
    import shutil

    from edge_runtime.bundle import BundleError

    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    target = copy / load_bundle(copy).variants["int8"]["files"]["classifier"]["path"]
    target.write_bytes(target.read_bytes()[:-1] + b"x")
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(copy).file("int8", "classifier")


def test_bad_inputs_are_one_line_errors(tiny_runs, tmp_path):
    not_a_model = tmp_path / "model.keras"
    not_a_model.write_text("hello")
    result = runner.invoke(app, ["export", "--segmenter", str(not_a_model),
                                 "--classifier", str(tiny_runs / "classify" / "classifier.keras"),
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "not a loadable Keras model" in result.output
    swapped = runner.invoke(app, ["export", "--segmenter", str(tiny_runs / "classify" / "classifier.keras"),
                                  "--classifier", str(tiny_runs / "segment" / "segmenter.keras"),
                                  "--out", str(tmp_path / "o")])
    assert swapped.exit_code == 2 and "is this the classifier?" in swapped.output
    no_rep = _export(tiny_runs, tmp_path / "o2", "--variants", "int8", "--representative", "0")
    assert no_rep.exit_code == 2 and "representative" in no_rep.output
    unknown = _export(tiny_runs, tmp_path / "o3", "--variants", "int4")
    assert unknown.exit_code == 2 and "unknown variant" in unknown.output


def test_pack_keeps_files_and_figures_of_the_chosen_variants(bundle, tmp_path):
    out = tmp_path / "device"
    result = runner.invoke(app, ["pack", "--bundle", str(bundle), "--variants", "int8,fp32",
                                 "--default-variant", "fp32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    packed, source = load_bundle(out), load_bundle(bundle)
    assert list(packed.variants) == ["fp32", "int8"] and packed.manifest["default_variant"] == "fp32"
    assert packed.variants["int8"] == source.variants["int8"]  # sha256 and metrics unchanged
    packed.read("int8", "classifier")
    bad = runner.invoke(app, ["pack", "--bundle", str(bundle), "--variants", "int4", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "not in" in bad.output


def test_mixed_int8_records_its_float_layers(bundle):
    m = load_bundle(bundle).manifest["variants"]["int8-mixed"]["metrics"]
    for role in ("segmenter", "classifier"):
        float_layers = m[role]["conversion"]["float_layers"]
        assert len(float_layers) == 3
        worst = m[role]["conversion"]["worst_int8_layers"]
        assert [r["scaled_rmse"] for r in worst] == sorted((r["scaled_rmse"] for r in worst), reverse=True)


def test_float_layers_option_sets_how_many_stay_in_float(tiny_runs, tmp_path):
    result = _export(tiny_runs, tmp_path / "mixed1", "--variants", "int8-mixed", "--float-layers", "1")
    assert result.exit_code == 0, result.output
    m = load_bundle(tmp_path / "mixed1").manifest["variants"]["int8-mixed"]["metrics"]
    assert [len(m[role]["conversion"]["float_layers"]) for role in ("segmenter", "classifier")] == [1, 1]


def test_qat_calibration_covers_activations_beyond_six():
    """tfmot starts activation ranges at -6..6; calibrated, a model whose activations reach the
    hundreds must match its float original in inference mode before any fine-tuning."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    from dermedge.export import optimize

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(4)(x))
    images = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 3)).astype(np.float32)
    expected = model.predict(images, verbose=0)
    assert np.abs(expected).max() > 30  # far outside tfmot's initial -6..6

    def relative_error(quantized):
        return np.abs(quantized.predict(images, verbose=0) - expected).max() / np.abs(expected).max()

    moving_average = quant_ops.MovingAvgQuantize
    assert relative_error(optimize.quantization_aware(model, calibration=images)) < 0.05
    assert quant_ops.MovingAvgQuantize is moving_average  # tfmot's own op is back
    assert relative_error(optimize.quantization_aware(model)) > 0.5


def test_pruned_and_qat_classifiers_record_their_fine_tune_target(bundle):
    variants = load_bundle(bundle).variants
    assert variants["qat-int8"]["qat"]["classifier_target"].startswith("float model probabilities")
    assert variants["pruned-int8"]["pruning"]["classifier_target"].startswith("float model probabilities")


def test_distillation_pulls_a_student_towards_the_float_model():
    """Fine-tuning with a teacher fits the teacher's probabilities, whatever the labels say."""
    import numpy as np
    import tensorflow as tf

    from dermedge.export.build import _fine_tune
    from dermedge.train.data import ArrayData

    tf.keras.utils.set_random_seed(0)

    def tiny_classifier():
        inputs = tf.keras.Input((16, 16, 3))
        x = tf.keras.layers.Rescaling(1 / 255)(inputs)
        x = tf.keras.layers.Conv2D(4, 3, activation="relu")(x)
        x = tf.keras.layers.GlobalAveragePooling2D()(x)
        return tf.keras.Model(inputs, tf.keras.layers.Dense(7, activation="softmax")(x))

    teacher, student = tiny_classifier(), tiny_classifier()
    images = np.random.default_rng(0).integers(0, 256, (64, 16, 16, 3)).astype(np.uint8)
    data = ArrayData(images, np.zeros(64, np.int64), [], [])  # every label says class 0

    def divergence():
        t, s = teacher.predict(images, verbose=0), student.predict(images, verbose=0)
        return float(np.mean(np.sum(t * np.log(t / s), axis=1)))

    before = divergence()
    _fine_tune(student, "classifier", data, 20, 16, 1e-2, [], 7, teacher=teacher)
    assert divergence() < 0.5 * before
