"""`dermedge explain`: Grad-CAM of the Keras classifier on the crop the deployed pipeline cuts."""

import numpy as np
import pytest
from typer.testing import CliRunner

from dermedge.commands.cli import app
from edge_runtime.image_io import read_image
from edge_runtime.overlay import write_rgb
from edge_runtime.synthetic import draw_lesion

pytest.importorskip("tensorflow")
runner = CliRunner()


def test_grad_cam_is_a_normalised_map_for_the_asked_class(tiny_runs):
    from dermedge.train.explain import grad_cam
    from dermedge.train.models import load_trained_model

    model = load_trained_model(tiny_runs / "classify" / "classifier.keras", "classifier")
    size = int(model.inputs[0].shape[1])
    crop = draw_lesion(np.random.default_rng(1), size, size)[0]
    heatmap, probabilities, chosen = grad_cam(model, crop)
    assert heatmap.shape == (size, size) and heatmap.min() >= 0 and heatmap.max() <= 1
    assert chosen == int(np.argmax(probabilities)) and probabilities.sum() == pytest.approx(1, abs=1e-5)
    np.testing.assert_allclose(probabilities, model.predict(crop[None].astype(np.float32), verbose=0)[0], atol=1e-5)
    assert grad_cam(model, crop, class_index=2)[2] == 2


def test_explain_writes_the_panel(tiny_runs, tiny_bundle, tmp_path):
    image_path = tmp_path / "lesion.png"
    write_rgb(image_path, draw_lesion(np.random.default_rng(0))[0])
    out = tmp_path / "panel.png"
    result = runner.invoke(app, ["explain", str(image_path), "--classifier",
                                 str(tiny_runs / "classify" / "classifier.keras"), "--bundle", str(tiny_bundle),
                                 "--out", str(out), "--class", "mel"])
    assert result.exit_code == 0, result.output
    assert "Grad-CAM for mel" in result.output
    panel = read_image(out)
    assert panel.shape[0] == 32 and panel.shape[1] > 64  # photo | gap | crop, at the classifier's size
    missing = runner.invoke(app, ["explain", str(tmp_path / "nope.jpg"), "--bundle", str(tiny_bundle)])
    assert missing.exit_code == 2 and "nope.jpg" in missing.output and "Traceback" not in missing.output
