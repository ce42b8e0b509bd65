"""Segmenter v2: the U-Net on a pretrained backbone's feature pyramid, its warm-up, its augmentation
for other dermatoscopes, and its export."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("tensorflow")
from dermedge.commands.cli import app  # noqa: E402

runner = CliRunner()


@pytest.mark.parametrize("encoder, skips", [
    ("mobilenetv2", ["block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu", "block_12_add"]),
    ("efficientnet-lite0", ["block1_expand_relu", "block3_expand_relu", "block5_expand_relu", "block10_add"]),
])
def test_pretrained_encoder_feeds_the_decoder_at_strides_2_4_8_16(encoder, skips):
    from dermedge.train.models import build_segmenter, encoder_layers

    model = build_segmenter(64, encoder=encoder, encoder_weights=None)
    assert model.output_shape == (None, 64, 64, 1)
    taken = [model.get_layer(f"skip{level}").input[1] for level in (1, 2, 3)] + [model.get_layer("up3").input]
    assert [t.name.split("/")[0] for t in taken] == skips
    assert [int(t.shape[1]) for t in taken] == [32, 16, 8, 4]
    frozen = {layer.name for layer in encoder_layers(model)}
    assert frozen and not any(name.startswith(("dec", "up", "mask")) for name in frozen)
    assert not any(layer.name.startswith("head") for layer in model.layers)  # cut after stride 16
    assert encoder_layers(build_segmenter(32, depth=2, base_filters=4)) == []  # scratch: nothing frozen


def test_encoder_needs_the_unet_decoder_and_a_divisible_size():
    from dermedge.errors import DermedgeError
    from dermedge.train.models import build_segmenter

    with pytest.raises(DermedgeError, match="unet"):
        build_segmenter(64, encoder="mobilenetv2", decoder="fcn")
    with pytest.raises(DermedgeError, match="divisible"):
        build_segmenter(72, encoder="mobilenetv2")
    with pytest.raises(DermedgeError, match="unknown encoder"):
        build_segmenter(64, encoder="resnet50")


def test_device_augmentation_keeps_masks_binary_and_frames_hide_the_lesion():
    from dermedge.train.data import ArrayData, segmentation_dataset

    images = np.full((16, 32, 32, 3), 180, np.uint8)
    masks = np.ones((16, 32, 32, 1), np.uint8)  # lesion everywhere: a dark frame must cut it
    batches = list(segmentation_dataset(ArrayData(images, masks, [], []), 16, augment=True,
                                        augmentation="device").repeat().take(4))
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    assert x.shape == (64, 32, 32, 3) and y.shape == (64, 32, 32, 1)
    assert 0.0 <= x.min() and x.max() <= 255.0 and set(np.unique(y)) <= {0.0, 1.0}
    corners = y[:, 0, 0, 0]
    assert 0 < (corners == 0).sum() < len(corners)  # some images carry a circular frame, not all
    assert (x[y[..., 0] == 0].mean() < 60)  # framed-out pixels are dark
    with pytest.raises(ValueError, match="augmentation"):
        segmentation_dataset(ArrayData(images, masks, [], []), 4, augment=True, augmentation="strong")


def test_train_segment_with_a_pretrained_encoder_warms_up_then_exports(ham_dir, tiny_runs, tmp_path):
    out = tmp_path / "seg_mnv2"
    result = runner.invoke(app, ["train", "segment", "--images", str(ham_dir / "images"),
                                 "--labels", str(ham_dir / "HAM10000_metadata.csv"), "--masks", str(ham_dir / "masks"),
                                 "--out", str(out), "--input-size", "32", "--encoder", "mobilenetv2",
                                 "--encoder-weights", "none", "--warmup-epochs", "1", "--epochs", "1",
                                 "--batch-size", "8", "--augment", "device"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["encoder"] == "mobilenetv2" and summary["epochs_run"] == 2 and summary["kept_epochs"] == [2, 2]
    test = json.loads((out / "test_metrics.json").read_text())
    assert test["dice_worst_decile"] <= test["dice_p10"] + 1e-9 or test["n"] < 10
    assert test["dice_worst_decile"] <= test["dice"] + 1e-9

    bundle = tmp_path / "bundle"
    result = runner.invoke(app, ["export", "--segmenter", str(out / "segmenter.keras"),
                                 "--classifier", str(tiny_runs / "classify" / "classifier.keras"),
                                 "--out", str(bundle), "--variants", "int8", "--representative", "8",
                                 "--agreement-floor", "0", "--no-calibrate"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["segmenter"]["encoder"] == "mobilenetv2"
    assert manifest["segmenter"]["normalization"].startswith("(x - 127.5) / 127.5")
    assert manifest["variants"]["int8"]["metrics"]["segmenter"]["mask_dice_vs_float"] > 0.5


def test_skip_projection_narrows_the_skips_and_continues_the_saved_encoder(tmp_path):
    from dermedge.errors import DermedgeError
    from dermedge.train.models import build_segmenter
    from dermedge.train.segment import _continue_from

    plain = build_segmenter(64, encoder="mobilenetv2", encoder_weights=None)
    saved = tmp_path / "segmenter.keras"
    plain.save(saved)
    narrow = build_segmenter(64, encoder="mobilenetv2", encoder_weights=None, skip_projection=True)
    assert [int(narrow.get_layer(f"skip{level}").input[1].shape[-1]) for level in (1, 2, 3)] == [16, 32, 64]
    assert narrow.count_params() < plain.count_params()

    fresh = _continue_from(saved, narrow)
    assert set(fresh) == {f"skip{level}_proj{part}" for level in (1, 2, 3) for part in ("", "_bn")} | \
        {f"dec{level}_conv1" for level in (1, 2, 3)}
    for name in ("Conv1", "block_6_expand", "up2_conv", "dec2_conv2", "mask"):  # encoder and unchanged decoder
        for got, want in zip(narrow.get_layer(name).get_weights(), plain.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(DermedgeError, match="not the architecture"):  # another encoder never half-loads
        _continue_from(saved, build_segmenter(64, encoder="efficientnet-lite0", encoder_weights=None))
    with pytest.raises(DermedgeError, match="--skip-projection"):
        build_segmenter(64, skip_projection=True)  # the scratch U-Net's skips are already narrow
