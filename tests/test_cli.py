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
