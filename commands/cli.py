"""The `dermedge` command. It only parses options and formats results; the work lives in
`train/`, `export/` and `edge_runtime/`, whose heavy dependencies (TensorFlow, coremltools,
scikit-learn) load only when a command needs them, so the base install stays light.

Each option's default is the one the code behind it keeps (a Config dataclass field, a function
parameter), read here rather than restated, and each Config is filled from the command's parameters
of the same names (`_config`). The Config modules are imported for that: they import TensorFlow
lazily (tests/test_no_tensorflow.py runs `--help` with it blocked)."""

from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import fields
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from dermedge import __version__
from dermedge.commands.batch import stdout_console
from dermedge.commands.benchmark_config import BenchmarkConfig
from dermedge.commands.calibration import calibrate_bundle
from dermedge.commands.stream import best_frame_path, screen
from dermedge.errors import DermedgeError, missing_extra
from dermedge.export.config import ExportConfig
from dermedge.export.formats import names_help, parse_variant_list
from dermedge.train.config import ClassifyConfig, SegmentConfig
from edge_runtime.alerts import AlertPolicy
from edge_runtime.bundle import BundleError
from edge_runtime.capture import Backoff
from edge_runtime.image_io import ImageError
from edge_runtime.pipeline import PipelineOptions
from edge_runtime.quality import QualityThresholds
from edge_runtime.stream import StreamConfig


class _FlagHelp:
    """Typer's rich help (0.2x) prints every option's type, flags included: `--example <bool>`, as if a
    flag took a value. A flag shows as its name only: an empty metavar prints nothing there."""

    def format_help(self, ctx, formatter) -> None:
        for param in self.get_params(ctx):
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        super().format_help(ctx, formatter)


class _Command(_FlagHelp, TyperCommand):
    pass


class _Group(_FlagHelp, TyperGroup):
    pass


class _Typer(typer.Typer):
    """A Typer whose groups and commands show flags without a metavar (see `_FlagHelp`)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("cls", _Group)
        super().__init__(**kwargs)

    def command(self, *args, **kwargs):
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


app = _Typer(
    help="dermedge: lesion segmentation + classification, from training to the edge device.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
train_app = _Typer(help="Train the segmenter or the classifier on a dataset.", no_args_is_help=True)
app.add_typer(train_app, name="train")
evaluate_app = _Typer(help="Score the deployed pipeline (a bundle variant) on labelled data.",
                      no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")

console = Console(stderr=True)
_state = {"debug": False}


def friendly_errors(command):
    """Turn expected failures into one line on stderr and exit status 2 (`--debug` re-raises)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (DermedgeError, BundleError, ImageError, FileNotFoundError, ValueError) as exc:
            if _state["debug"]:
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dermedge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = debug


def _default(function, name: str):
    """The default of a function's parameter (for the options of commands that call a function, not a Config)."""
    return inspect.signature(function).parameters[name].default


def _config(config_class, params: dict, **computed):
    """`config_class` from a command's parameters (`ctx.params`) named as its fields, and the fields the
    command works out itself (`computed`); the rest keep their defaults. A path becomes a string where
    the field is one."""
    taken = {f.name: str(params[f.name]) if isinstance(params[f.name], Path) and "Path" not in str(f.type)
             else params[f.name] for f in fields(config_class) if f.name in params and f.name not in computed}
    return config_class(**taken, **computed)


# Options shared by several commands, declared once. Those of the two training commands have the same
# default in SegmentConfig and ClassifyConfig (tests/test_cli.py checks every default against its Config).
ImagesOpt = typer.Option(..., "--images", help="Image folder (or class-folder / PH2 root).")
LabelsOpt = typer.Option(None, "--labels", help="HAM10000 metadata or ISIC one-hot ground-truth CSV.")
MasksOpt = typer.Option(None, "--masks", help="Mask folder: <image_id>_segmentation.png.")
StrategyOpt = typer.Option(SegmentConfig.strategy, "--strategy", help="tf.distribute: default, mirrored or multiworker.")
SeedOpt = typer.Option(SegmentConfig.seed, "--seed")
LogicalCpusOpt = typer.Option(SegmentConfig.logical_cpus, "--logical-cpus",
                              help="Split the CPU into N devices (test mirrored).")
LimitOpt = typer.Option(SegmentConfig.limit, "--limit", help="Use only the first N images.")
PatienceOpt = typer.Option(SegmentConfig.patience, "--patience", help="Early-stopping patience in epochs.")

# The pipeline's options (`PipelineOptions`, built by `_pipeline`) for every command that runs it.
BundleOpt = typer.Option(None, "--bundle", help="Bundle folder or .zip (default: the one installed with dermedge).")
VariantOpt = typer.Option(PipelineOptions.variant, "--variant", help="Bundle variant to run (default: the bundle's "
                          "default_variant, its best full-integer model; see `dermedge info`).")
ThreadsOpt = typer.Option(PipelineOptions.num_threads, "--threads", help="Interpreter threads (default: LiteRT's choice).")
TtaOpt = typer.Option(PipelineOptions.tta, "--tta", help="Test-time augmentation: classify each crop's flips and a "
                                                          "quarter turn and average (4x the classifier's time).")
# The quality gate's knobs (`QualityThresholds` fields, same names): `predict`, `evaluate classify` and
# `stream` take them all, so a threshold set for the stream can be checked on stills.
MinSharpnessOpt = typer.Option(QualityThresholds.min_sharpness, "--min-sharpness", min=0,
                               help="Blur gate: variance of the Laplacian at 200 px (default set on HAM10000); "
                                    "a blurrier image is inconclusive (predict, evaluate) or not analysed (stream).")

SplitOpt = typer.Option(None, "--split", help="With a dermedge split.csv as labels: which split (default test).")
EvalImagesOpt = typer.Option(..., "--images", help="Image folder.")
MetricsJsonOpt = typer.Option(None, "--json", help="Write the metrics as JSON.")


@train_app.command("segment")
@friendly_errors
def train_segment(
    ctx: typer.Context,
    images: Path = ImagesOpt,
    labels: Optional[Path] = LabelsOpt,
    masks: Optional[Path] = MasksOpt,
    out: Path = typer.Option(SegmentConfig.out, "--out", help="Run directory."),
    input_size: int = typer.Option(SegmentConfig.input_size, "--input-size"),
    base_filters: int = typer.Option(SegmentConfig.base_filters, "--base-filters"),
    depth: int = typer.Option(SegmentConfig.depth, "--depth"),
    max_filters: int = typer.Option(SegmentConfig.max_filters, "--max-filters"),
    decoder: str = typer.Option(SegmentConfig.decoder, "--decoder", help="unet or fcn."),
    encoder: str = typer.Option(
        SegmentConfig.encoder, "--encoder",
        help="none (the U-Net trained from scratch), mobilenetv2 or efficientnet-lite0 (an "
             "ImageNet-initialised encoder, skips at strides 2, 4, 8, 16; --depth is then 4).",
    ),
    encoder_weights: Optional[str] = typer.Option(
        SegmentConfig.encoder_weights, "--encoder-weights",
        help="The encoder's initial weights: a local file (MobileNetV2 .h5, EfficientNet-Lite legacy .pth), "
             "'imagenet' or 'none'. Default as --backbone-weights of `train classify`.",
    ),
    skip_projection: bool = typer.Option(
        SegmentConfig.skip_projection, "--skip-projection/--no-skip-projection",
        help="Narrow a pretrained encoder's skips to the decoder's width with 1x1 convs: the Lite0 U-Net "
             "at 128 px goes from 363 to about 270 MMACs.",
    ),
    warmup_epochs: int = typer.Option(
        SegmentConfig.warmup_epochs, "--warmup-epochs",
        help="Epochs with the pretrained encoder frozen (the decoder learns first), before --epochs of fine-tuning.",
    ),
    augment: str = typer.Option(
        SegmentConfig.augment, "--augment",
        help="basic (flips, quarter turns, zoom, light colour) or device (also colour casts, uneven light, "
             "vignetting and dark circular frames, blur, zoom out: other dermatoscopes).",
    ),
    negatives: float = typer.Option(
        SegmentConfig.negatives, "--negatives", min=0.0, max=1.0,
        help="Lesion-free images (empty masks) added to training, as a fraction of the training photos: "
             "lesion-free windows of them and the photos with their lesion painted out. Teaches bare skin.",
    ),
    init_from: Optional[Path] = typer.Option(
        SegmentConfig.init_from, "--init-from",
        help="Start from a segmenter.keras of an earlier run (same split and encoder). Decoder layers the "
             "options change (--skip-projection) start fresh: give them --warmup-epochs with the encoder frozen.",
    ),
    epochs: int = typer.Option(SegmentConfig.epochs, "--epochs"),
    batch_size: int = typer.Option(SegmentConfig.batch_size, "--batch-size"),
    learning_rate: float = typer.Option(SegmentConfig.learning_rate, "--lr"),
    patience: int = PatienceOpt,
    average_last: int = typer.Option(
        SegmentConfig.average_last, "--average-last",
        help="Run every epoch at the constant --lr (no early stopping, no rate cuts) and keep the mean "
             "weights of the last N, BatchNorm re-estimated. 0 keeps the best validation epoch.",
    ),
    seed: int = SeedOpt,
    strategy: str = StrategyOpt,
    logical_cpus: int = LogicalCpusOpt,
    limit: int = LimitOpt,
) -> None:
    """Train the lesion segmenter (U-Net or FCN) with BCE + Dice loss."""
    from dermedge.train.segment import train_segmenter

    weights = _default_backbone_weights(encoder, encoder_weights) if encoder != "none" else None
    report = train_segmenter(_config(SegmentConfig, ctx.params, encoder_weights=weights))
    _print_report(report, out)


@train_app.command("classify")
@friendly_errors
def train_classify(
    ctx: typer.Context,
    images: Path = ImagesOpt,
    labels: Optional[Path] = LabelsOpt,
    masks: Optional[Path] = MasksOpt,
    out: Path = typer.Option(ClassifyConfig.out, "--out", help="Run directory."),
    backbone: str = typer.Option(
        ClassifyConfig.backbone, "--backbone", help="mobilenetv2, efficientnet-lite0 or efficientnet-lite2."
    ),
    backbone_weights: Optional[str] = typer.Option(
        ClassifyConfig.backbone_weights, "--backbone-weights",
        help="Initial weights: a local file (MobileNetV2 .h5, EfficientNet-Lite legacy .pth), 'imagenet' or "
             "'none'. Default: 'imagenet' for EfficientNet-Lite (its weights come with the [train] extra), "
             "'none' for MobileNetV2 (Keras' download needs internet: pass the .h5).",
    ),
    input_size: int = typer.Option(ClassifyConfig.input_size, "--input-size"),
    alpha: float = typer.Option(ClassifyConfig.alpha, "--alpha", help="MobileNetV2 width multiplier."),
    crop_margin: float = typer.Option(ClassifyConfig.crop_margin, "--crop-margin", help="Lesion box margin (fraction of its side)."),
    crop_jitter: float = typer.Option(
        ClassifyConfig.crop_jitter, "--crop-jitter",
        help="Train on framings up to this fraction looser or tighter than the deployed crop, shifted "
             "(e.g. 0.2): robustness to the U-Net's boxes. 0 zooms in only.",
    ),
    colour_constancy: str = typer.Option(
        ClassifyConfig.colour_constancy, "--colour-constancy",
        help="none, or shades-of-grey: each crop corrected by its photo's illuminant (p = 6), against "
             "other dermatoscopes' light; the export records it and the runtime applies it.",
    ),
    imbalance: str = typer.Option(
        ClassifyConfig.imbalance, "--imbalance",
        help="auto (measure and pick), class-weights, focal, balanced-sampling or none.",
    ),
    head_epochs: int = typer.Option(ClassifyConfig.head_epochs, "--head-epochs"),
    epochs: int = typer.Option(ClassifyConfig.epochs, "--epochs", help="Fine-tuning epochs after the head phase."),
    batch_size: int = typer.Option(ClassifyConfig.batch_size, "--batch-size"),
    learning_rate: float = typer.Option(ClassifyConfig.learning_rate, "--lr", help="Fine-tuning peak learning rate."),
    patience: int = PatienceOpt,
    seed: int = SeedOpt,
    split_seed: Optional[int] = typer.Option(
        ClassifyConfig.split_seed, "--split-seed", help="Seed of the lesion-grouped split (default: --seed): retrain on the same split."
    ),
    strategy: str = StrategyOpt,
    logical_cpus: int = LogicalCpusOpt,
    limit: int = LimitOpt,
    init_from: Optional[Path] = typer.Option(
        ClassifyConfig.init_from, "--init-from", help="Continue fine-tuning a classifier.keras of an earlier run (same split)."
    ),
    bn_momentum: Optional[float] = typer.Option(
        ClassifyConfig.bn_momentum, "--bn-momentum", help="Let the backbone's BatchNorm train, with this momentum (e.g. 0.99)."
    ),
    average_last: int = typer.Option(
        ClassifyConfig.average_last, "--average-last",
        help="Run every epoch (no early stopping) and keep the mean weights of the last N, "
             "BatchNorm re-estimated. 0 keeps the best validation epoch.",
    ),
    teacher: Optional[list[Path]] = typer.Option(
        None, "--teacher",
        help="Distil from a teacher: the run folder of an earlier `train classify` on the same split "
             "(its train_predictions.npz are the soft targets; the teacher model is not needed). "
             "Repeat it for an ensemble: the teachers' probabilities are averaged.",
    ),
    distill_weight: float = typer.Option(
        ClassifyConfig.distill_weight, "--distill-weight",
        help="Share of the teacher's softened probabilities in each training target (the rest is the label).",
    ),
    distill_temperature: float = typer.Option(
        ClassifyConfig.distill_temperature, "--distill-temperature",
        help="Softens the teacher's probabilities (p^(1/T), renormalised) before they are mixed in.",
    ),
    label_smoothing: float = typer.Option(
        ClassifyConfig.label_smoothing, "--label-smoothing", min=0.0, max=0.5,
        help="Share of each target spread evenly over the classes (e.g. 0.1): less confident, often better "
             "calibrated and ranked. 0 keeps one-hot targets.",
    ),
    mixup: float = typer.Option(
        ClassifyConfig.mixup, "--mixup", min=0.0, max=1.0,
        help="Mixup: blend training images and their targets pairwise, lambda ~ Beta(a, a) (e.g. 0.2), "
             "class weights carried per mixed image. 0 trains on the images as they are.",
    ),
    free_rotation: bool = typer.Option(
        ClassifyConfig.free_rotation, "--free-rotation/--quarter-turns",
        help="Rotate training crops by any angle (borders reflected) on top of flips and quarter turns.",
    ),
    malignant_weight: float = typer.Option(
        ClassifyConfig.malignant_weight, "--malignant-weight", min=0.0,
        help="Add this weight x the binary cross-entropy of the malignant share (mel + bcc + akiec) of "
             "the softmax to the loss (e.g. 1): trains the screening score, not only the 7 classes.",
    ),
) -> None:
    """Train the lesion classifier (MobileNetV2 or EfficientNet-Lite) on mask-guided lesion crops."""
    from dermedge.train.classify import train_classifier

    config = _config(ClassifyConfig, ctx.params,
                     backbone_weights=_default_backbone_weights(backbone, backbone_weights),
                     teachers=tuple(str(t) for t in teacher or ()))
    report = train_classifier(config)
    _print_report(report, out)


def _default_backbone_weights(backbone: str, weights: Optional[str]) -> Optional[str]:
    from dermedge.train.backbones import get_backbone

    if weights is None:
        return get_backbone(backbone).default_weights
    return None if weights == "none" else weights


@app.command("export")
@friendly_errors
def export_command(
    ctx: typer.Context,
    segmenter: Path = typer.Option(Path("runs/segment/segmenter.keras"), "--segmenter", help="Trained segmenter .keras."),
    classifier: Path = typer.Option(Path("runs/classify/classifier.keras"), "--classifier", help="Trained classifier .keras."),
    out: Path = typer.Option(ExportConfig.out, "--out", help="Bundle folder to write."),
    variants: Optional[str] = typer.Option(None, "--variants", help=f"Comma list (default: all) of {names_help()}."),
    split: Optional[Path] = typer.Option(ExportConfig.split, "--split", help="split.csv of the training run (default: beside the classifier)."),
    data_root: Optional[Path] = typer.Option(ExportConfig.data_root, "--data-root", help="Folder with images/ and masks/ if the split's paths moved."),
    representative: int = typer.Option(ExportConfig.representative, "--representative", help="Training images for int8 calibration."),
    validation_images: int = typer.Option(ExportConfig.validation_images, "--validation-images", help="Held-out images to check against Keras (0 = whole test split)."),
    sparsity: float = typer.Option(ExportConfig.sparsity, "--sparsity", help="Target sparsity of pruned-int8."),
    fine_tune_epochs: int = typer.Option(ExportConfig.fine_tune_epochs, "--fine-tune-epochs", help="Pruning fine-tune epochs."),
    qat_epochs: int = typer.Option(ExportConfig.qat_epochs, "--qat-epochs", help="Quantization-aware fine-tune epochs."),
    float_layers: int = typer.Option(ExportConfig.float_layers, "--float-layers", min=0, help="int8-mixed: keep this many "
                                     "of the worst-quantized tensors (QuantizationDebugger scaled RMSE) in float."),
    bias_correction: bool = typer.Option(ExportConfig.bias_correction, "--bias-correction/--no-bias-correction",
                                         help="int8 and pruned-int8: shift each conv's bias to cancel the mean "
                                              "int8 weight-rounding error on the representative images."),
    fine_tune_images: int = typer.Option(ExportConfig.fine_tune_images, "--fine-tune-images", help="Training images for fine-tuning (0 = all)."),
    agreement_floor: float = typer.Option(ExportConfig.agreement_floor, "--agreement-floor", help="Fail if top-1 agreement or mask Dice vs Keras is below."),
    zip_bundle_: bool = typer.Option(False, "--zip", help="Also write <out>.zip."),
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate", help="Fit temperature, malignant "
                                   "threshold and 'uncertain' floor per TFLite variant on the validation split."),
    distill: bool = typer.Option(ExportConfig.distill, "--distill/--no-distill", help="Pruned and QAT classifiers fine-tune "
                                 "to the float model's probabilities (distillation) instead of the labels."),
    seed: int = typer.Option(ExportConfig.seed, "--seed"),
) -> None:
    """Prune, quantize and convert the trained models to TFLite and Core ML, check every export
    against Keras on held-out images, and write a bundle with its manifest."""
    from dermedge.commands.bundle_table import rich_table, sparsity_lines
    from dermedge.export.build import export_bundle
    from edge_runtime.bundle import load_bundle
    from dermedge.export.pack import zip_bundle

    result = export_bundle(_config(ExportConfig, ctx.params, variants=variants))
    manifest = result.manifest
    if calibrate:
        tflite_variants = [n for n, v in manifest["variants"].items() if v["format"] == "tflite"]
        if result.validation and tflite_variants:
            console.print(f"calibrating {', '.join(tflite_variants)} on {len(result.validation)} validation images")
            calibrate_bundle(result.out, result.validation[0].image_path.parent, result.split, "val", console=console)
            manifest = load_bundle(result.out).manifest
        else:
            console.print("[yellow]no validation split or TFLite variant: the bundle is not calibrated[/]")
    if zip_bundle_:
        console.print(f"wrote {zip_bundle(result.out)}")
    table = stdout_console()
    table.print(rich_table(manifest, "export: every variant against its Keras original (held-out test split)"))
    for line in sparsity_lines(manifest):
        table.print(line)
    if result.failures:
        raise DermedgeError("agreement below the floor: " + "; ".join(result.failures))


@app.command("pack")
@friendly_errors
def pack_command(
    bundle: Path = typer.Option(ExportConfig.out, "--bundle", help="Full bundle folder from `dermedge export`."),
    out: Path = typer.Option(..., "--out", help="Folder for the packed bundle."),
    variants: str = typer.Option("tflite", "--variants", help=f"Variants to keep: {names_help()}."),
    default_variant: Optional[str] = typer.Option(None, "--default-variant", help="What devices run by default "
                                                  "(default: the source's, else int8)."),
) -> None:
    """Copy a bundle with only the variants a device needs (files, sha256 and metrics unchanged)."""
    from dermedge.export.pack import pack_bundle

    manifest = pack_bundle(bundle, out, variants, default_variant)
    size = sum(f["bytes"] for v in manifest["variants"].values() for f in v["files"].values())
    stdout_console().print(f"packed {', '.join(manifest['variants'])} into {out} ({size / 1e6:.2f} MB), "
                    f"default variant {manifest['default_variant']}")


@app.command("info")
@friendly_errors
def info_command(
    bundle: Optional[Path] = BundleOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON: labels and variants."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the variant table as Markdown."),
) -> None:
    """Show a bundle: labels, and per variant its format, files and metrics."""
    import json

    from dermedge.commands.bundle_table import markdown_table, rich_table, sparsity_lines
    from edge_runtime.bundle import load_bundle

    loaded = load_bundle(bundle)
    m = loaded.manifest
    if as_json:
        out = {"labels": m["labels"], "malignant_labels": m["malignant_labels"],
               "default_variant": m.get("default_variant"),
               "variants": {name: {"format": v["format"], "files": v["files"], "metrics": v["metrics"]}
                            for name, v in m["variants"].items()}}
        typer.echo(json.dumps(out, indent=2))
        return
    if markdown:
        typer.echo(markdown_table(m))
        return
    out_console = stdout_console()
    out_console.print(f"[bold]{loaded.root}[/] schema {m['schema_version']}, labels: {', '.join(m['labels'])} "
                      f"(malignant: {', '.join(m['malignant_labels'])}); default variant "
                      f"{loaded.default_variant}", highlight=False)
    out_console.print(rich_table(m, f"validated on {m['validation']['images']} held-out images"))
    files = Table(title="files")
    for column in ("variant", "model", "path", "bytes", "sha256"):
        files.add_column(column, justify="right" if column == "bytes" else "left")
    for name, v in m["variants"].items():
        for role, record in v["files"].items():
            files.add_row(name, role, record["path"], f"{record['bytes']:,}", record["sha256"][:16])
    out_console.print(files)
    for line in sparsity_lines(m):
        out_console.print(line)


def _pipeline(params: dict):
    """The pipeline a command's shared options ask for (`--bundle` and the `PipelineOptions` and
    `QualityThresholds` fields among its parameters, by name)."""
    from edge_runtime.pipeline import Pipeline

    options = _config(PipelineOptions, params, quality=_config(QualityThresholds, params))
    pipeline = Pipeline.load(params.get("bundle"), options)
    console.print(f"bundle {pipeline.bundle.root}, variant {pipeline.variant}{' with TTA' if pipeline.tta else ''}, "
                  f"backend {pipeline.backend}", highlight=False, soft_wrap=True)
    return pipeline


@app.command("predict")
@friendly_errors
def predict_command(
    ctx: typer.Context,
    paths: Optional[list[str]] = typer.Argument(None, help="Image files, folders or glob patterns."),
    bundle: Optional[Path] = BundleOpt,
    variant: Optional[str] = VariantOpt,
    num_threads: Optional[int] = ThreadsOpt,
    json_out: Optional[Path] = typer.Option(
        None, "--json", help="Write all results as one JSON document when the batch ends ('-' for stdout); "
                             "on Ctrl-C it is written with what finished, marked \"interrupted\": true."),
    jsonl_out: Optional[Path] = typer.Option(
        None, "--jsonl", help="Write JSON Lines as the batch goes ('-' for stdout): one result object per image, "
                              "flushed at once, or a path-and-error object for an unreadable image."),
    csv_out: Optional[Path] = typer.Option(
        None, "--csv", help="Write one CSV row per image as the batch goes (flushed at once)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted batch: read back --csv, --jsonl and --json, skip the "
                                "images already in them (by path, as written; unreadable ones recorded in "
                                "--jsonl/--json are not retried) and append the rest. Without it, existing "
                                "output files are replaced."),
    overlay: Optional[Path] = typer.Option(None, "--overlay", help="Folder for annotated images."),
    masks_out: Optional[Path] = typer.Option(
        None, "--masks-out", help="Folder for each image's cleaned lesion mask, <stem>_segmentation.png (0/255, "
                                  "image size): the masks the crops are cut from, readable as --masks."),
    example: bool = typer.Option(False, "--example", help="Run on a drawn synthetic lesion (no data needed)."),
    tta: bool = TtaOpt,
    min_sharpness: float = MinSharpnessOpt,
) -> None:
    """Segment, crop and classify images with the edge runtime (no TensorFlow needed).

    Ctrl-C stops a batch cleanly with exit status 130; every finished result is kept in the output files.
    """
    from dermedge.commands.predict import predict_example, predict_files

    pipeline = _pipeline(ctx.params)
    if example:
        predict_example(pipeline, json_out, overlay)
    elif not paths:
        raise DermedgeError("give image files, folders or globs to predict on, or --example")
    else:
        status = predict_files(pipeline, paths, json_out, csv_out, overlay, jsonl_out=jsonl_out, resume=resume,
                               masks_out=masks_out)
        if status:
            raise typer.Exit(status)


@evaluate_app.command("segment")
@friendly_errors
def evaluate_segment(
    ctx: typer.Context,
    images: Path = EvalImagesOpt,
    masks: Path = typer.Option(..., "--masks", help="Masks: <image_id>_segmentation.png or <image_id>.png."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Optional CSV restricting the images (e.g. a split.csv)."),
    split: Optional[str] = SplitOpt,
    bundle: Optional[Path] = BundleOpt,
    variant: Optional[str] = VariantOpt,
    num_threads: Optional[int] = ThreadsOpt,
    json_out: Optional[Path] = MetricsJsonOpt,
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for the Dice histogram."),
) -> None:
    """Dice / IoU / ISIC thresholded Jaccard of the deployed lesion masks."""
    from dermedge.commands.evaluate import evaluate_segmentation

    pipeline = _pipeline(ctx.params)
    metrics = evaluate_segmentation(pipeline, images, masks, labels, split, console, plots)
    _show_metrics(metrics, ("n", "dice", "iou", "thresholded_jaccard"), json_out)


@evaluate_app.command("classify")
@friendly_errors
def evaluate_classify(
    ctx: typer.Context,
    images: Path = EvalImagesOpt,
    labels: Path = typer.Option(..., "--labels", help="HAM10000 metadata, ISIC one-hot, split.csv or binary CSV."),
    split: Optional[str] = SplitOpt,
    bundle: Optional[Path] = BundleOpt,
    variant: Optional[str] = VariantOpt,
    num_threads: Optional[int] = ThreadsOpt,
    json_out: Optional[Path] = MetricsJsonOpt,
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for confusion, ROC and reliability plots."),
    tta: bool = TtaOpt,
    min_sharpness: float = MinSharpnessOpt,
) -> None:
    """The whole two-stage pipeline as deployed (U-Net crops), scored against labels."""
    from dermedge.commands.evaluate import evaluate_classification

    pipeline = _pipeline(ctx.params)
    metrics = evaluate_classification(pipeline, images, labels, split, console, plots)
    if "balanced_accuracy" in metrics:
        shown = ("n", "accuracy", "balanced_accuracy", "macro_auc", "ece")
        extra = {f"{view} {k}": metrics[view][k] for view in ("melanoma", "malignant") if view in metrics
                 for k in ("auc", "sensitivity", "specificity")}
        low, high = metrics["balanced_accuracy_ci95"]
        extra = {"balanced_accuracy 95% interval": f"{low:.3f} to {high:.3f} (bootstrap)", **extra}
        extra["malignant threshold"] = metrics["malignant_threshold"]
        extra["ECE without calibration"] = metrics["calibration"]["ece_uncalibrated"]
        extra["inconclusive rate"] = metrics["inconclusive"]["rate"]
        extra["balanced_accuracy of conclusive"] = metrics["inconclusive"]["conclusive"]["balanced_accuracy"]
    else:
        shown, extra = ("n", "auc", "sensitivity", "specificity"), {}
    _show_metrics(metrics, shown, json_out, extra)


@app.command("benchmark")
@friendly_errors
def benchmark_command(
    ctx: typer.Context,
    bundle: Optional[Path] = BundleOpt,
    variants: Optional[str] = typer.Option(None, "--variants", help="Comma list of variants (and/or keras); default all."),
    threads: str = typer.Option(",".join(map(str, BenchmarkConfig.threads)), "--threads",
                                help="Thread counts to time, comma separated, e.g. 1,2."),
    runs: int = typer.Option(BenchmarkConfig.runs, "--runs", min=1, help="Timed images per variant and thread count."),
    warmup: int = typer.Option(BenchmarkConfig.warmup, "--warmup", min=0, help="Untimed images per variant first."),
    images: Optional[Path] = typer.Option(None, "--images", help="Labelled image folder (accuracy columns and "
                                          "latency inputs; default: drawn lesions, no accuracy)."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Mask folder for Dice/IoU."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="HAM10000 metadata, ISIC one-hot or split.csv."),
    split: Optional[str] = SplitOpt,
    limit: int = typer.Option(BenchmarkConfig.limit, "--limit", min=0,
                              help="Score only the first N labelled images (0 = all)."),
    keras: bool = typer.Option(BenchmarkConfig.keras, "--keras/--no-keras", help="Time the Keras float originals as the baseline "
                               "(needs the [train] extra)."),
    keras_segmenter: Path = typer.Option(BenchmarkConfig.keras_segmenter, "--keras-segmenter"),
    keras_classifier: Path = typer.Option(BenchmarkConfig.keras_classifier, "--keras-classifier"),
    memory: bool = typer.Option(BenchmarkConfig.memory, "--memory/--no-memory", help="Measure load time and peak memory per "
                                "variant in child processes."),
    tta: Optional[str] = typer.Option(None, "--tta", help="Comma list of variants to run also with test-time "
                                      "augmentation (rows <variant>+tta)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full result as JSON."),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown", help="Write the tables as Markdown."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for accuracy_vs_size.png and latency.png."),
) -> None:
    """Latency, size and accuracy of every bundle variant side by side, against the Keras originals."""
    import json

    from dermedge.commands.benchmark import run_benchmark
    from dermedge.commands.benchmark_report import machine_line, markdown, plot, quantization_lines, rich_tables

    try:
        thread_counts = tuple(sorted({int(t) for t in threads.split(",") if t.strip()}))
    except ValueError:
        raise DermedgeError(f"--threads takes whole numbers separated by commas, got {threads!r}") from None
    if not thread_counts or min(thread_counts) < 1:
        raise DermedgeError("--threads needs at least one count of 1 or more")
    config = _config(BenchmarkConfig, ctx.params, variants=parse_variant_list(variants), threads=thread_counts,
                     tta=parse_variant_list(tta) or [])
    result = run_benchmark(config, console)
    out = stdout_console()
    out.print(machine_line(result), highlight=False)
    for table in rich_tables(result):
        out.print(table)
    for line in quantization_lines(result):
        out.print(line, highlight=False)
    if result["skipped"]:
        console.print(f"[yellow]{len(result['skipped'])} image(s) skipped (listed in the JSON)[/]")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")
    if markdown_out:
        markdown_out.parent.mkdir(parents=True, exist_ok=True)
        markdown_out.write_text(markdown(result))
    if plots:
        for path in plot(result, plots):
            console.print(f"wrote {path}", highlight=False)


@app.command("stream")
@friendly_errors
def stream_command(
    ctx: typer.Context,
    source: str = typer.Option("0", "--source", help="Camera index, /dev/video* device, video file or stream URL."),
    bundle: Optional[Path] = BundleOpt,
    variant: Optional[str] = VariantOpt,
    num_threads: Optional[int] = ThreadsOpt,
    max_fps: Optional[float] = typer.Option(StreamConfig.max_fps, "--max-fps", min=0.1, help="Analyse at most this "
                                            "many frames a second (the newest frame wins; saves power)."),
    pace: bool = typer.Option(StreamConfig.pace, "--realtime/--fast", help="Video files: play at the file's fps, "
                              "dropping frames like a camera, instead of analysing every frame as fast as possible."),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="Also write every event here, one JSON object "
                                         "per line."),
    stdout_format: str = typer.Option(_default(screen, "stdout_format"), "--stdout", help="Events on stdout: json "
                                      "(one object per line), text, or none."),
    frame_every: float = typer.Option(StreamConfig.frame_every, "--frame-every", min=0, help="Seconds between frame "
                                      "events (0: every frame)."),
    no_frame_events: bool = typer.Option(False, "--no-frame-events", help="Only alerts, lesion and source notices, summary."),
    show: bool = typer.Option(_default(screen, "show"), "--show", help="Preview window when a display exists (q stops)."),
    record: Optional[Path] = typer.Option(None, "--record", help="Write the annotated video (.mp4 or .avi)."),
    best: Optional[Path] = typer.Option(None, "--best", help="Where the sharpest analysed frame of the run is saved "
                                        "with its overlay (default: beside --jsonl as <name>.best.jpg; without "
                                        "either, not saved); each lesion's sharpest frame goes beside it as "
                                        "<name>.lesion<id>.jpg when the lesion ends (the summary lists both)."),
    alert_k: int = typer.Option(AlertPolicy.k, "--alert-k", min=1,
                                help="Refer when K of the last N good frames of a lesion..."),
    alert_n: int = typer.Option(AlertPolicy.n, "--alert-n", min=1, help="...reach the malignant threshold."),
    alert_threshold: Optional[float] = typer.Option(AlertPolicy.threshold, "--alert-threshold", min=0, max=1,
                                                    help="Default: the bundle's malignant threshold."),
    min_sharpness: float = MinSharpnessOpt,
    retries: int = typer.Option(Backoff.attempts, "--retries", min=0, help="Retries of a camera that stops "
                                "delivering (0.25 s, doubling) before giving up."),
) -> None:
    """Screen live dermatoscope video: quality gate, pipeline, lesion by lesion K-of-N referral alerts, as JSON
    events (a new lesion begins when the view changes or after a stretch without a usable lesion)."""
    config = _config(StreamConfig, ctx.params, alerts=AlertPolicy(threshold=alert_threshold, k=alert_k, n=alert_n),
                     frame_every=None if no_frame_events else frame_every, backoff=Backoff(attempts=retries),
                     best_frame=best_frame_path(best, jsonl))
    pipeline = _pipeline(ctx.params)
    summary = screen(pipeline, source, config, console, jsonl, stdout_format, show, record)
    if summary["error"]:
        console.print(f"[bold red]error:[/] {escape(summary['error'])}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)


@app.command("calibrate")
@friendly_errors
def calibrate_command(
    bundle: Path = typer.Option(ExportConfig.out, "--bundle", help="Bundle folder whose manifest gets the calibration."),
    images: Path = EvalImagesOpt,
    labels: Path = typer.Option(Path("runs/classify/split.csv"), "--labels", help="Labelled CSV; a split.csv is "
                                "filtered to --split."),
    split: str = typer.Option(_default(calibrate_bundle, "split"), "--split",
                              help="Split to fit on (never the one you report on)."),
    sensitivity: float = typer.Option(_default(calibrate_bundle, "sensitivity"), "--sensitivity", min=0.01, max=1.0,
                                      help="Malignant sensitivity the threshold must reach on the fit data."),
    coverage: float = typer.Option(_default(calibrate_bundle, "coverage"), "--coverage", min=0.01, max=1.0,
                                   help="Share of images that keep an answer; the least confident rest is 'uncertain'."),
    variants: Optional[str] = typer.Option(None, "--variants", help="Comma list (default: every TFLite variant)."),
    threads: Optional[int] = ThreadsOpt,
) -> None:
    """Fit temperature scaling, the malignant operating point and the 'uncertain' confidence floor per
    variant on held-out data, and store them in the bundle manifest (the runtime applies them)."""
    found = calibrate_bundle(bundle, images, labels, split, sensitivity, coverage,
                             parse_variant_list(variants), threads, console)
    table = Table(title=f"calibration written to {bundle}/manifest.json (fitted on split {split!r})")
    for column in ("variant", "images", "temperature", "ECE before", "ECE after", "malignant threshold",
                   "sens. / spec.", "min confidence"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name, c in found.items():
        fit = c["on_fit_data"]
        table.add_row(name, str(c["fitted_on"]["images"]), f"{c['temperature']:.3f}", f"{fit['ece_before']:.4f}",
                      f"{fit['ece_after']:.4f}", f"{c['malignant_threshold']:.3f}",
                      f"{fit['malignant_sensitivity']:.3f} / {fit['malignant_specificity']:.3f}",
                      f"{c['min_confidence']:.3f}")
    stdout_console().print(table)


@app.command("explain")
@friendly_errors
def explain_command(
    image: Path = typer.Argument(..., help="Image to explain."),
    classifier: Path = typer.Option(Path("runs/classify/classifier.keras"), "--classifier",
                                    help="The Keras classifier the bundle was exported from."),
    out: Optional[Path] = typer.Option(None, "--out", help="Panel PNG to write (default: <image>.gradcam.png here)."),
    class_name: Optional[str] = typer.Option(None, "--class", help="Class to explain (default: the predicted one)."),
    bundle: Optional[Path] = BundleOpt,
    variant: Optional[str] = VariantOpt,
) -> None:
    """Grad-CAM of the classifier on the lesion crop the pipeline cuts: the photo with the crop box,
    beside the crop with the heatmap of the evidence for the class."""
    try:
        from dermedge.train.explain import explain
    except ImportError as exc:
        raise missing_extra("train", "TensorFlow") from exc
    from edge_runtime.image_io import read_image
    from edge_runtime.overlay import write_rgb

    try:
        picture = read_image(image)
    except ImageError as exc:
        raise DermedgeError(f"{image}: {exc}") from None
    found = explain(picture, classifier, bundle, variant, class_name)
    out = out or Path(f"{image.stem}.gradcam.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_rgb(out, found["panel"])
    stdout_console().print(f"{image.name}: Grad-CAM for {found['class']} (p = {found['probability']:.3f}, Keras "
                           f"classifier) -> {out}", highlight=False)


def _show_metrics(metrics: dict, keys: tuple[str, ...], json_out: Optional[Path], extra: dict | None = None) -> None:
    import json

    table = Table(title=f"{metrics['variant']} pipeline")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in [*((k, metrics[k]) for k in keys), *(extra or {}).items()]:
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    stdout_console().print(table)
    if metrics.get("skipped"):
        console.print(f"[yellow]{len(metrics['skipped'])} image(s) skipped (listed in the JSON):[/] "
                      + "; ".join(f"{s['path']}: {s['error']}" for s in metrics["skipped"][:3]),
                      highlight=False, soft_wrap=True)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(metrics, indent=2) + "\n")


def _print_report(report: dict, out: Path) -> None:
    table = Table(title=f"run: {out}")
    table.add_column("split")
    keys = [k for k in ("dice", "iou", "accuracy", "balanced_accuracy", "macro_auc") if k in report.get("test", report.get("val", {}))]
    for key in ["n", *keys]:
        table.add_column(key, justify="right")
    for split in ("val", "test"):
        if split in report:
            row = report[split]
            table.add_row(split, str(row["n"]), *(f"{row[k]:.4f}" for k in keys))
    stdout_console().print(table)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
