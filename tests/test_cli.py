"""Bad input gives one line on stderr and a non-zero exit, never a traceback."""

import pytest
from typer.testing import CliRunner

from dermedge.cli import app

runner = CliRunner()


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).output.startswith("dermedge ")
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0 and "segment" in result.output and "classify" in result.output


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
