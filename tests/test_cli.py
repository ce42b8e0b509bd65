"""Bad input gives one line on stderr and a non-zero exit, never a traceback."""

import pytest
from typer.testing import CliRunner

from dermedge.commands.cli import app

runner = CliRunner()


@pytest.mark.runtime
def test_version_and_help():
    assert runner.invoke(app, ["--version"]).output.startswith("dermedge ")
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0 and "segment" in result.output and "classify" in result.output


@pytest.mark.runtime
def test_predict_help_shows_flags_without_a_value():
    """A flag takes no value, so its help line names no type (it read `--example <bool>`)."""
    result = runner.invoke(app, ["predict", "--help"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│ --")}
    for flag in ("--example", "--tta", "--help"):
        assert "<" not in lines[flag], lines[flag]
    assert "<path>" in lines["--bundle"] and "<int>" in lines["--threads"]  # options with a value keep theirs
    assert "<bool>" not in result.output


@pytest.mark.runtime
@pytest.mark.parametrize("command", [[], ["stream"], ["export"], ["benchmark"], ["evaluate", "classify"]])
def test_no_help_shows_a_bool_metavar(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--help" in result.output and "<bool>" not in result.output


@pytest.mark.parametrize("command", ["segment", "classify"])
def test_missing_image_folder(tmp_path, command):
    pytest.importorskip("tensorflow")
    result = runner.invoke(app, ["train", command, "--images", str(tmp_path / "none"),
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "folder not found" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_label_csv_is_one_line(ham_dir, tmp_path):
    pytest.importorskip("tensorflow")
    bad = tmp_path / "labels.csv"
    bad.write_text("filename,class\na.jpg,nv\n")
    result = runner.invoke(app, ["train", "classify", "--images", str(ham_dir / "images"),
                                 "--labels", str(bad), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "columns not recognised" in result.output
    assert "Traceback" not in result.output


def test_segmenter_needs_masks(ham_dir, tmp_path):
    pytest.importorskip("tensorflow")
    result = runner.invoke(app, ["train", "segment", "--images", str(ham_dir / "images"),
                                 "--labels", str(ham_dir / "HAM10000_metadata.csv"),
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "--masks" in result.output


# -- option defaults live in the Config (or function) each command fills ------------------------------

def _filled():
    """(command path, what fills its options, options named otherwise than their field). Imported here:
    collecting this file must not need more than the base install."""
    from dermedge.commands.benchmark import BenchmarkConfig
    from dermedge.commands.calibration import calibrate_bundle
    from dermedge.commands.stream import screen
    from dermedge.export.build import ExportConfig
    from dermedge.train.classify import ClassifyConfig
    from dermedge.train.segment import SegmentConfig
    from edge_runtime.alerts import AlertPolicy
    from edge_runtime.capture import Backoff
    from edge_runtime.pipeline import PipelineOptions
    from edge_runtime.quality import QualityThresholds
    from edge_runtime.stream import StreamConfig

    pipeline = [PipelineOptions, QualityThresholds]
    return [
        (["train", "segment"], [SegmentConfig], {}),
        (["train", "classify"], [ClassifyConfig], {}),
        (["export"], [ExportConfig], {}),
        (["pack"], [], {"bundle": (ExportConfig, "out")}),
        (["benchmark"], [BenchmarkConfig], {}),
        (["calibrate"], [calibrate_bundle], {"bundle": (ExportConfig, "out")}),
        (["predict"], pipeline, {}),
        (["evaluate", "segment"], pipeline, {}),
        (["evaluate", "classify"], pipeline, {}),
        (["stream"], [StreamConfig, screen, *pipeline],
         {"alert_k": (AlertPolicy, "k"), "alert_n": (AlertPolicy, "n"), "alert_threshold": (AlertPolicy, "threshold"),
          "retries": (Backoff, "attempts")}),
    ]


def _same(shown, kept) -> bool:
    from pathlib import Path

    if isinstance(kept, tuple) and isinstance(shown, str):  # benchmark --threads: "1,2" for (1, 2)
        return shown == ",".join(map(str, kept))
    if isinstance(shown, Path) or isinstance(kept, Path):
        return str(shown) == str(kept)
    return shown == kept


@pytest.mark.runtime
def test_every_option_default_is_the_one_its_config_keeps():
    """Each option named as a field of the Config (or parameter of the function) its command fills shows
    and falls back to that field's default: the default is written once, in the Config."""
    import inspect

    import typer

    root = typer.main.get_command(app)
    for path, sources, renamed in _filled():
        command = root
        for name in path:
            command = command.commands[name]
        defaults = {}
        for source in reversed(sources):  # the first source named wins
            for name, parameter in inspect.signature(source).parameters.items():
                if parameter.default is not inspect.Parameter.empty and repr(parameter.default) != "<factory>":
                    defaults[name] = parameter.default
        for name, (source, field) in renamed.items():
            defaults[name] = inspect.signature(source).parameters[field].default
        checked = [p for p in command.params if p.name in defaults]
        assert checked, path
        for param in checked:
            assert _same(param.default, defaults[param.name]), (path, param.name, param.default, defaults[param.name])
    # the pipeline's options go to every command that runs it, under the same names
    predict = {p.name for p in root.commands["predict"].params}
    assert {"variant", "num_threads", "tta", "min_sharpness"} <= predict


@pytest.mark.runtime
def test_a_config_is_filled_from_the_parameters_of_its_fields():
    from pathlib import Path

    from dermedge.commands.cli import _config
    from dermedge.train.segment import SegmentConfig

    config = _config(SegmentConfig, {"images": Path("data/images"), "labels": None, "epochs": 3, "json_out": 1},
                     limit=7)
    assert config == SegmentConfig(images="data/images", epochs=3, limit=7)  # paths as the str fields keep them
    with pytest.raises(TypeError):
        _config(SegmentConfig, {"images": "x"}, no_such_field=1)


@pytest.mark.runtime
def test_predict_honours_min_sharpness(tmp_path):
    """The quality gate's knob reaches `predict` as it does `stream`: a slightly blurred lesion is
    conclusive at a lax threshold and inconclusive (`blurry`, from the gate) at a strict one."""
    import json

    import cv2
    import numpy as np

    from edge_runtime.synthetic import draw_lesion

    image, _ = draw_lesion(np.random.default_rng(7), width=400, height=300)
    path = tmp_path / "blurred.png"
    cv2.imwrite(str(path), cv2.cvtColor(cv2.GaussianBlur(image, (0, 0), 2), cv2.COLOR_RGB2BGR))  # sharpness ~8
    reasons = {}
    for threshold in ("1", "50"):
        result = runner.invoke(app, ["predict", str(path), "--variant", "int8", "--threads", "1",
                                     "--min-sharpness", threshold, "--json", "-"])
        assert result.exit_code == 0, result.output
        (record,) = json.loads(result.stdout)["results"]
        reasons[threshold] = record["inconclusive_reason"]
    assert reasons == {"1": None, "50": "blurry"}
