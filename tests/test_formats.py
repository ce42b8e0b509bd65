"""The variant table is the one source of variant names, converters and baselines."""

from pathlib import Path

import pytest

from dermedge.errors import DermedgeError
from dermedge.export import coreml, tflite
from dermedge.export.formats import (FLOAT_REFERENCE, GROUPS, PREFERRED_DEFAULT, VARIANTS, VARIANTS_BY_NAME,
                                     parse_variant_list, pick_default_variant, select_variants,
                                     variants_markdown)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_shows_the_table_itself():
    assert variants_markdown() in README.read_text()


def test_every_variant_has_a_converter_and_a_baseline_of_its_format():
    converters = {"tflite": tflite.QUANTIZERS, "coreml": coreml.WEIGHT_COMPRESSION}
    for variant in VARIANTS:
        assert variant.quantization in converters[variant.format], variant.name
        if variant.baseline:
            assert VARIANTS_BY_NAME[variant.baseline].format == variant.format, variant.name
    assert VARIANTS_BY_NAME[FLOAT_REFERENCE].quantization == "none"
    assert VARIANTS_BY_NAME[PREFERRED_DEFAULT].integer


def test_variant_lists_parse_one_way():
    assert parse_variant_list(None) is None and parse_variant_list(" ") is None
    assert parse_variant_list("int8, int8-mixed,int8") == ["int8", "int8-mixed"]
    assert parse_variant_list("coreml,fp32") == [*GROUPS["coreml"], "fp32"]
    assert parse_variant_list("keras,int8") == ["keras", "int8"]  # a bundle's reader checks the names
    assert [v.name for v in select_variants("int8,fp32")] == ["fp32", "int8"]  # table order
    assert [v.name for v in select_variants("all")] == [v.name for v in VARIANTS]
    with pytest.raises(DermedgeError, match="unknown variant.*fp64.*int8-mixed"):
        select_variants("int8,fp64")


def test_default_variant_prefers_what_is_asked_then_int8():
    assert pick_default_variant(["fp32", "int8", "int8-mixed"], "int8-mixed") == "int8-mixed"
    assert pick_default_variant(["fp32", "int8"], "qat-int8") == "int8"
    assert pick_default_variant(["fp16", "fp32"]) == "fp16"


def test_unknown_converter_settings_are_refused():
    with pytest.raises(ValueError, match="unknown quantization"):
        tflite.convert(None, "int4")
    with pytest.raises(ValueError, match="unknown Core ML quantization"):
        coreml.convert(None, "classifier", ("a",), "palette2")


def test_export_help_lists_every_variant():
    from typer.testing import CliRunner

    from dermedge.commands.cli import app

    result = CliRunner().invoke(app, ["export", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    for variant in VARIANTS:
        assert variant.name in result.output, variant.name
