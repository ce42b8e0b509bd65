"""Each model trains for one short epoch on a drawn dataset and leaves a complete run folder."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

pytest.importorskip("tensorflow")
from dermedge.commands.cli import app  # noqa: E402

runner = CliRunner()


def _data_args(ham_dir):
    return ["--images", str(ham_dir / "images"), "--labels", str(ham_dir / "HAM10000_metadata.csv"),
            "--masks", str(ham_dir / "masks")]


def test_train_segment_writes_a_complete_run(ham_dir, tmp_path):
    out = tmp_path / "seg"
    result = runner.invoke(app, ["train", "segment", *_data_args(ham_dir), "--out", str(out),
                                 "--input-size", "32", "--depth", "2", "--base-filters", "4",
                                 "--epochs", "1", "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    for name in ("segmenter.keras", "config.json", "split.csv", "history.json", "training_curves.png",
                 "val_metrics.json", "test_metrics.json", "summary.json"):
        assert (out / name).is_file(), name
    test = json.loads((out / "test_metrics.json").read_text())
    assert 0.0 <= test["dice"] <= 1.0 and test["n"] == len(test["dice_per_image"]) > 0
    config = json.loads((out / "config.json").read_text())
    assert config["depth"] == 2 and "command" in config
    assert json.loads((out / "summary.json").read_text())["kept_epochs"] == [1, 1]  # the only epoch


def test_lesion_free_images_hold_no_lesion_pixel(tmp_path):
    """A window is cut away from the lesion; a photo whose lesion is small is painted out instead;
    one whose lesion fills it gives neither and is skipped."""
    import cv2
    import numpy as np

    from dermedge.datasets import Sample
    from dermedge.train.data import _lesion_free_window, load_lesion_free_arrays

    rng = np.random.default_rng(0)
    photo = np.full((150, 200, 3), (200, 160, 140), np.uint8)
    small, full = np.zeros((150, 200), np.uint8), np.ones((150, 200), np.uint8)
    cv2.circle(small, (40, 40), 15, 1, -1)
    cv2.circle(photo, (40, 40), 15, (60, 30, 20), -1)
    for _ in range(20):
        window = _lesion_free_window(photo, small, rng)
        assert window is not None and window.shape[0] * 4 == pytest.approx(window.shape[1] * 3, abs=4)
        assert window.min() > 100  # no dark lesion pixel in it
    samples = []
    for name, mask in (("small", small), ("full", full)):
        cv2.imwrite(str(tmp_path / f"{name}.jpg"), photo)
        cv2.imwrite(str(tmp_path / f"{name}_segmentation.png"), mask * 255)
        samples.append(Sample(name, tmp_path / f"{name}.jpg", "nv", mask_path=tmp_path / f"{name}_segmentation.png"))
    skin = load_lesion_free_arrays(samples * 3, 32, count=10, seed=0)
    assert [s.image_id for s in skin.kept] == ["small"] * 3
    assert skin.images.shape == (3, 32, 32, 3) and not skin.targets.any()


def test_train_segment_continues_a_run_with_lesion_free_images(ham_dir, tiny_runs, tmp_path):
    out = tmp_path / "neg"
    args = ["train", "segment", *_data_args(ham_dir), "--input-size", "32", "--depth", "2",
            "--base-filters", "4", "--epochs", "1", "--batch-size", "8", "--negatives", "0.5"]
    result = runner.invoke(app, [*args, "--out", str(out),
                                 "--init-from", str(tiny_runs / "segment" / "segmenter.keras")])
    assert result.exit_code == 0, result.output
    assert "lesion-free training images" in result.output
    assert json.loads((out / "config.json").read_text())["negatives"] == 0.5
    other = runner.invoke(app, [*args, "--out", str(tmp_path / "other"), "--base-filters", "8",
                                "--init-from", str(tiny_runs / "segment" / "segmenter.keras")])
    assert other.exit_code != 0 and "not the architecture" in other.output
    assert "Traceback" not in other.output


def test_train_segment_average_last(ham_dir, tmp_path):
    """Every epoch runs and the saved weights are the last ones' mean (not the best epoch's)."""
    args = ["train", "segment", *_data_args(ham_dir), "--input-size", "32", "--depth", "2",
            "--base-filters", "4", "--batch-size", "8"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "avg"), "--epochs", "2", "--average-last", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "avg" / "summary.json").read_text())
    assert summary["weights"].startswith("mean of the last 2") and summary["epochs_run"] == 2
    assert summary["kept_epochs"] == [1, 2]
    bad = runner.invoke(app, [*args, "--out", str(tmp_path / "bad"), "--epochs", "1", "--average-last", "2"])
    assert bad.exit_code == 2 and "--average-last" in bad.output
    assert not (tmp_path / "bad").exists()


def test_train_fcn_decoder(ham_dir, tmp_path):
    result = runner.invoke(app, ["train", "segment", *_data_args(ham_dir), "--out", str(tmp_path / "fcn"),
                                 "--input-size", "32", "--depth", "3", "--decoder", "fcn",
                                 "--epochs", "1", "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "fcn" / "summary.json").read_text())["parameters"] > 0


def test_train_classify_measures_imbalance_and_reports(ham_dir, tmp_path):
    out = tmp_path / "cls"
    result = runner.invoke(app, ["train", "classify", *_data_args(ham_dir), "--out", str(out),
                                 "--input-size", "32", "--head-epochs", "1", "--epochs", "1",
                                 "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    comparison = json.loads((out / "imbalance_comparison.json").read_text())
    assert set(comparison["results"]) == {"class-weights", "focal", "balanced-sampling", "none"}
    assert comparison["chosen"] in comparison["results"]
    for name in ("classifier.keras", "test_confusion.png", "test_roc.png", "val_metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert set(metrics["per_class"]) == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    for key in ("accuracy", "balanced_accuracy", "macro_auc", "melanoma", "malignant"):
        assert key in metrics
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 2  # head epoch + fine-tune epoch


def test_mirrored_strategy_on_two_logical_cpus(ham_dir, tmp_path):
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dermedge.commands.cli", "train", "segment", *_data_args(ham_dir),
         "--out", str(tmp_path / "mirrored"), "--input-size", "32", "--depth", "2", "--base-filters", "4",
         "--epochs", "1", "--batch-size", "8", "--strategy", "mirrored", "--logical-cpus", "2"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MirroredStrategy, 2 replica(s)" in proc.stdout
    assert (tmp_path / "mirrored" / "segmenter.keras").is_file()


def test_bad_backbone_weights_path_is_one_line(ham_dir, tmp_path):
    result = runner.invoke(app, ["train", "classify", *_data_args(ham_dir), "--out", str(tmp_path / "x"),
                                 "--backbone-weights", str(tmp_path / "missing.h5"), "--input-size", "32"])
    assert result.exit_code == 2
    assert "backbone weights not found" in result.output
    assert "Traceback" not in result.output


def test_unreachable_imagenet_download_is_one_line(ham_dir, tmp_path, monkeypatch):
    from tf_keras.src.utils import data_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: [Errno -2] Name or service not known")

    monkeypatch.setattr(data_utils, "get_file", offline)
    result = runner.invoke(app, ["train", "classify", *_data_args(ham_dir), "--out", str(tmp_path / "x"),
                                 "--backbone-weights", "imagenet", "--alpha", "1.0", "--input-size", "96",
                                 "--imbalance", "class-weights"])
    assert result.exit_code == 2, result.output
    assert "cannot download the ImageNet MobileNetV2 alpha 1.0 weights" in result.output
    assert "--backbone-weights" in result.output and "Traceback" not in result.output


def test_weights_of_another_width_name_the_likely_cause(tmp_path):
    from dermedge.errors import DermedgeError
    from dermedge.train.models import build_classifier
    from dermedge.train.tf_env import tensorflow

    narrow = tensorflow().keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    narrow.save_weights(tmp_path / "narrow.h5")
    with pytest.raises(DermedgeError, match="another --alpha than 0.5"):
        build_classifier(7, 32, alpha=0.5, backbone_weights=tmp_path / "narrow.h5")


def test_jitter_context_holds_the_deployed_framing_in_its_middle():
    from edge_runtime.preprocess import lesion_box
    from dermedge.train.data import jitter_context

    import numpy as np

    mask = np.zeros((400, 400), bool)
    mask[180:220, 170:230] = True  # a 60-px lesion, far from every border
    size, margin = jitter_context(224, 0.15, 0.2)
    assert size == 269
    deployed, context = lesion_box(mask, 0.15), lesion_box(mask, margin)
    assert context.width == round(deployed.width * 1.2)
    assert abs((context.x0 + context.x1) - (deployed.x0 + deployed.x1)) <= 1  # same centre
    assert jitter_context(224, 0.15, 0.0) == (224, 0.15)  # no jitter: the deployed crop itself


def test_jittered_training_batches_have_the_model_size():
    import numpy as np

    from dermedge.train.data import ArrayData, classification_dataset

    data = ArrayData(images=np.full((4, 40, 40, 3), 128, np.uint8), targets=np.array([0, 1, 2, 0]), kept=[], failed=[])
    x, y = next(iter(classification_dataset(data, 3, 4, augment=True, out_size=32, jitter=0.2)))
    assert x.shape == (4, 32, 32, 3) and y.shape == (4, 3)
    x, _ = next(iter(classification_dataset(data, 3, 4, augment=False, out_size=32, jitter=0.2)))
    assert x.shape == (4, 32, 32, 3)


def test_mixup_blends_images_and_targets_alike_and_keeps_each_label_the_larger_share():
    """Each image is a flat grey of its class index, so a mixed image's grey must equal its mixed
    target's expected class; the sample weight is that target's share of the class weights."""
    import numpy as np

    from dermedge.train.data import mix_batches
    from dermedge.train.tf_env import tensorflow

    tf = tensorflow()
    labels = np.array([0, 1, 2, 3, 1, 0, 3, 2])
    x = np.broadcast_to(labels[:, None, None, None], (8, 4, 4, 3)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[labels]
    class_weights = np.array([1.0, 2.0, 4.0, 8.0])
    ds = mix_batches(tf.data.Dataset.from_tensors((x, y)).repeat(20), 0.4, class_weights)
    lambdas = []
    for mx, my, w in ds.as_numpy_iterator():
        np.testing.assert_allclose(mx[:, 0, 0, 0], my @ np.arange(4.0), atol=1e-5)
        np.testing.assert_allclose(w, my @ class_weights, rtol=1e-5)
        np.testing.assert_allclose(my.sum(axis=1), 1.0, atol=1e-6)
        assert (my.argmax(axis=1) == labels).all()
        lambdas.extend(my[np.arange(8), labels])
    assert min(lambdas) >= 0.5 and np.mean(np.array(lambdas) < 0.999) > 0.5  # mixed, label dominant
    _, _, unweighted = next(mix_batches(tf.data.Dataset.from_tensors((x, y)), 0.4).as_numpy_iterator())
    assert (unweighted == 1.0).all()


def test_free_rotation_turns_about_the_centre_by_angles_other_than_quarter_turns():
    """A bar through the centre: its orientation (from image moments) after each draw must spread
    over the circle, the centre pixel must stay put, and a centred disc must stay a disc."""
    import numpy as np

    from dermedge.train.data import _free_rotation
    from dermedge.train.tf_env import tensorflow

    tf = tensorflow()
    tf.random.set_seed(3)
    side = 65
    yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
    bar = np.where((np.abs(yy) <= 2) & (np.abs(xx) <= 20), 255.0, 0.0)
    disc = np.where(xx ** 2 + yy ** 2 <= 15 ** 2, 255.0, 0.0)
    image = tf.constant(np.stack([bar, disc, bar], axis=-1)[..., :3], tf.float32)
    angles = []
    for _ in range(24):
        out = _free_rotation(tf, image).numpy()
        assert out.shape == (side, side, 3)
        assert out[32, 32, 0] > 200  # the centre stays on the bar
        assert np.abs(out[..., 1] - disc).mean() < 3.0  # a disc is the same disc at any angle
        w = out[..., 0] / out[..., 0].sum()
        cxx, cyy, cxy = (w * xx * xx).sum(), (w * yy * yy).sum(), (w * xx * yy).sum()
        angles.append(np.degrees(0.5 * np.arctan2(2 * cxy, cxx - cyy)) % 180)
    off_grid = [a for a in angles if min(a % 90, 90 - a % 90) > 10]
    assert len(off_grid) >= 8, angles


def test_train_classify_with_crop_jitter_mixup_free_rotation_and_another_seed_on_the_same_split(ham_dir, tmp_path):
    from dermedge.datasets import read_dataset
    from dermedge.splits import split_dataset, write_split_csv

    out = tmp_path / "jitter"
    result = runner.invoke(app, ["train", "classify", *_data_args(ham_dir), "--out", str(out),
                                 "--input-size", "32", "--head-epochs", "0", "--epochs", "1",
                                 "--batch-size", "8", "--imbalance", "class-weights", "--crop-jitter", "0.2",
                                 "--mixup", "0.2", "--free-rotation", "--seed", "7", "--split-seed", "0"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["crop_jitter"] == 0.2 and config["mixup"] == 0.2 and config["free_rotation"]
    dataset = read_dataset(ham_dir / "images", ham_dir / "HAM10000_metadata.csv", ham_dir / "masks")
    write_split_csv(split_dataset(dataset, 0.15, 0.15, seed=0), tmp_path / "seed0_split.csv")
    assert (out / "split.csv").read_bytes() == (tmp_path / "seed0_split.csv").read_bytes()
    assert json.loads((out / "test_metrics.json").read_text())["n"] > 0
    bad = runner.invoke(app, ["train", "classify", *_data_args(ham_dir), "--out", str(tmp_path / "bad"),
                              "--input-size", "32", "--imbalance", "class-weights", "--crop-jitter", "1.5"])
    assert bad.exit_code == 2 and "--crop-jitter" in bad.output


def test_tail_average_is_the_mean_of_the_last_epochs_weights():
    import numpy as np

    from dermedge.train.run import TailAverage
    from dermedge.train.tf_env import tensorflow

    tf = tensorflow()
    model = tf.keras.Sequential([tf.keras.layers.Input((2,)), tf.keras.layers.Dense(1)])
    average = TailAverage.create(tf, total_epochs=4, n=2)
    average.set_model(model)
    for epoch in range(4):
        model.set_weights([np.full((2, 1), float(epoch), np.float32), np.array([10.0 * epoch], np.float32)])
        average.on_epoch_end(epoch)
    kernel, bias = average.averaged_weights()
    np.testing.assert_allclose(kernel, np.full((2, 1), 2.5))  # epochs 2 and 3 only
    np.testing.assert_allclose(bias, [25.0])
    assert kernel.dtype == np.float32


def test_batchnorm_recalibration_moves_the_statistics_to_the_data():
    import numpy as np

    from dermedge.train.run import recalibrate_batchnorm
    from dermedge.train.tf_env import tensorflow

    tf = tensorflow()
    norm = tf.keras.layers.BatchNormalization(momentum=0.9)
    model = tf.keras.Sequential([tf.keras.layers.Input((3,)), norm])
    data = np.random.default_rng(0).normal(5.0, 2.0, (640, 3)).astype(np.float32)
    recalibrate_batchnorm(model, data, batch_size=32, passes=3)
    np.testing.assert_allclose(norm.moving_mean.numpy(), data.mean(0), atol=0.3)
    np.testing.assert_allclose(norm.moving_variance.numpy(), data.var(0), rtol=0.25)


def test_train_classify_average_last(ham_dir, tmp_path):
    out = tmp_path / "averaged"
    result = runner.invoke(app, ["train", "classify", *_data_args(ham_dir), "--out", str(out),
                                 "--input-size", "32", "--head-epochs", "0", "--epochs", "2",
                                 "--batch-size", "8", "--imbalance", "class-weights", "--bn-momentum", "0.9",
                                 "--average-last", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["weights"].startswith("mean of the last 2") and summary["epochs_run"] == 2
    assert summary["kept_epochs"] == [1, 2]
    bad = runner.invoke(app, ["train", "classify", *_data_args(ham_dir), "--out", str(tmp_path / "bad"),
                              "--input-size", "32", "--imbalance", "class-weights", "--epochs", "2",
                              "--average-last", "3"])
    assert bad.exit_code == 2 and "--average-last" in bad.output
    assert not (tmp_path / "bad").exists()


def test_training_curves_show_the_selection_score_and_the_kept_epochs(tmp_path, monkeypatch):
    from dermedge import reports

    drawn = {}
    real = reports._pyplot

    def spy():
        plt = real()
        original = plt.subplots

        def subplots(*args, **kwargs):
            fig, axes = original(*args, **kwargs)
            drawn["axes"] = axes[0]
            return fig, axes

        monkeypatch.setattr(plt, "subplots", subplots)
        return plt

    monkeypatch.setattr(reports, "_pyplot", spy)
    history = {"loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9, 0.9], "val_balanced_accuracy": [0.5, 0.6, 0.55]}
    reports.plot_history(history, tmp_path / "curves.png", "t", kept=(2, 3))
    assert (tmp_path / "curves.png").stat().st_size > 0
    titles = [ax.get_title() for ax in drawn["axes"]]
    assert titles == ["loss", "val_balanced_accuracy"]
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in drawn["axes"]]
    assert legends[0] == ["train", "val", "averaged (2-3)"] and legends[1] == ["val", "averaged (2-3)"]


def test_distillation_targets_keep_the_label_on_top_and_soften_the_teacher():
    import numpy as np

    from dermedge.train.classify import distillation_targets

    teacher = np.array([[0.0, 0.9, 0.1], [0.2, 0.2, 0.6]])
    targets = distillation_targets(np.array([0, 2]), teacher, weight=0.5, temperature=2.0)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
    assert list(targets.argmax(axis=1)) == [0, 2]  # the label's class keeps the largest share
    sharp = distillation_targets(np.array([0, 2]), teacher, weight=0.5, temperature=1.0)
    assert targets[0, 2] > sharp[0, 2]  # a higher temperature moves mass to the teacher's small classes
    np.testing.assert_allclose(distillation_targets(np.array([1]), teacher[:1], 0.0, 2.0), [[0, 1, 0]])


def test_train_classify_distils_from_a_teacher_run_of_the_same_split(ham_dir, tiny_runs, tmp_path):
    teacher = tiny_runs / "classify"
    assert (teacher / "train_predictions.npz").is_file()
    out = tmp_path / "student"
    args = ["train", "classify", *_data_args(ham_dir), "--input-size", "32", "--head-epochs", "0",
            "--epochs", "1", "--batch-size", "8", "--imbalance", "class-weights", "--teacher", str(teacher)]
    result = runner.invoke(app, [*args, "--out", str(out), "--distill-weight", "0.4"])
    assert result.exit_code == 0, result.output
    distillation = json.loads((out / "summary.json").read_text())["distillation"]
    assert distillation["weight"] == 0.4 and 0.0 <= distillation["teacher_train_accuracy"] <= 1.0
    assert (out / "train_predictions.npz").is_file()  # the student can teach in turn
    ensemble = runner.invoke(app, [*args, "--teacher", str(out), "--out", str(tmp_path / "ensemble")])
    assert ensemble.exit_code == 0, ensemble.output
    assert json.loads((tmp_path / "ensemble" / "summary.json").read_text())["distillation"]["teachers"] == \
        [str(teacher), str(out)]
    other_split = runner.invoke(app, [*args, "--out", str(tmp_path / "other"), "--split-seed", "3"])
    assert other_split.exit_code == 2 and "same split" in other_split.output
    too_heavy = runner.invoke(app, [*args, "--out", str(tmp_path / "heavy"), "--distill-weight", "0.8"])
    assert too_heavy.exit_code == 2 and "--distill-weight" in too_heavy.output


def test_label_smoothing_moves_the_loss_minimum_off_the_one_hot_target():
    """With --label-smoothing 0.1 a prediction of the smoothed target scores better than a near
    one-hot one; without it, worse (the loss the fine-tune compiles, class weights alike)."""
    import numpy as np

    from dermedge.train.classify import _loss_and_weights
    from dermedge.train.tf_env import tensorflow

    tf = tensorflow()
    target = np.array([[0.0, 1.0, 0.0]], np.float32)
    smoothed, sharp = np.array([[0.05, 0.9, 0.05]], np.float32), np.array([[0.001, 0.998, 0.001]], np.float32)
    for strategy in ("class-weights", "focal"):
        soft_loss, _ = _loss_and_weights(tf, strategy, np.array([0, 1, 2]), 3, label_smoothing=0.15)
        assert float(soft_loss(target, smoothed)) < float(soft_loss(target, sharp))
        plain_loss, _ = _loss_and_weights(tf, strategy, np.array([0, 1, 2]), 3)
        assert float(plain_loss(target, smoothed)) > float(plain_loss(target, sharp))


def test_malignant_term_charges_a_benign_reading_of_a_melanoma_more_than_a_malignant_one():
    """With --malignant-weight, a melanoma read as bcc (still malignant) costs less than one read
    as a nevus with the same melanoma probability; the plain 7-way loss cannot tell them apart."""
    import numpy as np

    from dermedge.train.classify import _loss_and_weights
    from dermedge.train.tf_env import tensorflow

    tf = tensorflow()
    classes = ("bcc", "mel", "nv")
    target = np.array([[0.0, 1.0, 0.0]], np.float32)
    as_bcc, as_nevus = np.array([[0.6, 0.3, 0.1]], np.float32), np.array([[0.1, 0.3, 0.6]], np.float32)
    plain, _ = _loss_and_weights(tf, "class-weights", np.array([0, 1, 2]), 3)
    assert float(plain(target, as_bcc)) == pytest.approx(float(plain(target, as_nevus)))
    with_term, _ = _loss_and_weights(tf, "class-weights", np.array([0, 1, 2]), 3, malignant=classes,
                                     malignant_weight=1.0)
    per_image = lambda prediction: float(np.mean(with_term(target, prediction)))  # noqa: E731
    assert per_image(as_bcc) < per_image(as_nevus)
    # the term is the binary cross-entropy of the malignant share: -log(0.9) for the bcc reading
    assert per_image(as_bcc) == pytest.approx(-np.log(0.3) - np.log(0.9), rel=1e-4)


def test_train_classify_refuses_a_malignant_weight_without_a_named_imbalance(ham_dir, tmp_path):
    result = runner.invoke(app, ["train", "classify", *_data_args(ham_dir), "--out", str(tmp_path / "run"),
                                 "--malignant-weight", "1"])
    assert result.exit_code == 2 and "--malignant-weight" in result.output
    assert not (tmp_path / "run").exists()


def test_train_classify_refuses_an_unknown_colour_constancy(ham_dir, tmp_path):
    result = runner.invoke(app, ["train", "classify", *_data_args(ham_dir), "--out", str(tmp_path / "run"),
                                 "--imbalance", "class-weights", "--colour-constancy", "retinex"])
    assert result.exit_code == 2 and "--colour-constancy" in result.output and "shades-of-grey" in result.output
    assert not (tmp_path / "run").exists()
