"""The `dermedge` command. It only parses options and formats results; the work lives in
`train/`, `export/` and `edge_runtime/`, imported lazily so the base install stays light."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from dermedge import __version__
from dermedge.errors import DermedgeError

app = typer.Typer(
    help="dermedge: lesion segmentation + classification, from training to the edge device.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(help="Train the segmenter or the classifier on a dataset.", no_args_is_help=True)
app.add_typer(train_app, name="train")

console = Console(stderr=True)
_state = {"debug": False}


def friendly_errors(command):
    """Turn expected failures into one line on stderr and exit status 2 (`--debug` re-raises)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (DermedgeError, FileNotFoundError, ValueError) as exc:
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


ImagesOpt = typer.Option(..., "--images", help="Image folder (or class-folder / PH2 root).")
LabelsOpt = typer.Option(None, "--labels", help="HAM10000 metadata or ISIC one-hot ground-truth CSV.")
MasksOpt = typer.Option(None, "--masks", help="Mask folder: <image_id>_segmentation.png.")
StrategyOpt = typer.Option("default", "--strategy", help="tf.distribute: default, mirrored or multiworker.")


@train_app.command("segment")
@friendly_errors
def train_segment(
    images: Path = ImagesOpt,
    labels: Optional[Path] = LabelsOpt,
    masks: Optional[Path] = MasksOpt,
    out: Path = typer.Option(Path("runs/segment"), "--out", help="Run directory."),
    input_size: int = typer.Option(128, "--input-size"),
    base_filters: int = typer.Option(8, "--base-filters"),
    depth: int = typer.Option(4, "--depth"),
    max_filters: int = typer.Option(64, "--max-filters"),
    decoder: str = typer.Option("unet", "--decoder", help="unet or fcn."),
    epochs: int = typer.Option(40, "--epochs"),
    batch_size: int = typer.Option(16, "--batch-size"),
    learning_rate: float = typer.Option(2e-3, "--lr"),
    patience: int = typer.Option(8, "--patience", help="Early-stopping patience in epochs."),
    seed: int = typer.Option(0, "--seed"),
    strategy: str = StrategyOpt,
    logical_cpus: int = typer.Option(0, "--logical-cpus", help="Split the CPU into N devices (test mirrored)."),
    limit: int = typer.Option(0, "--limit", help="Use only the first N images."),
) -> None:
    """Train the lesion segmenter (U-Net or FCN) with BCE + Dice loss."""
    from train.segment import SegmentConfig, train_segmenter

    config = SegmentConfig(
        images=str(images), labels=str(labels) if labels else None, masks=str(masks) if masks else None,
        out=str(out), input_size=input_size, base_filters=base_filters, depth=depth,
        max_filters=max_filters, decoder=decoder, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, patience=patience, seed=seed, strategy=strategy,
        logical_cpus=logical_cpus, limit=limit,
    )
    report = train_segmenter(config)
    _print_report(report, out)


@train_app.command("classify")
@friendly_errors
def train_classify(
    images: Path = ImagesOpt,
    labels: Optional[Path] = LabelsOpt,
    masks: Optional[Path] = MasksOpt,
    out: Path = typer.Option(Path("runs/classify"), "--out", help="Run directory."),
    backbone_weights: Optional[str] = typer.Option(
        None, "--backbone-weights", help="Local ImageNet MobileNetV2 .h5, or 'imagenet' to download."
    ),
    input_size: int = typer.Option(224, "--input-size"),
    alpha: float = typer.Option(0.35, "--alpha", help="MobileNetV2 width multiplier."),
    crop_margin: float = typer.Option(0.15, "--crop-margin", help="Lesion box margin (fraction of its side)."),
    imbalance: str = typer.Option(
        "auto", "--imbalance",
        help="auto (measure and pick), class-weights, focal, balanced-sampling or none.",
    ),
    head_epochs: int = typer.Option(3, "--head-epochs"),
    epochs: int = typer.Option(30, "--epochs", help="Fine-tuning epochs after the head phase."),
    batch_size: int = typer.Option(32, "--batch-size"),
    learning_rate: float = typer.Option(3e-4, "--lr", help="Fine-tuning peak learning rate."),
    patience: int = typer.Option(8, "--patience"),
    seed: int = typer.Option(0, "--seed"),
    strategy: str = StrategyOpt,
    logical_cpus: int = typer.Option(0, "--logical-cpus"),
    limit: int = typer.Option(0, "--limit", help="Use only the first N images."),
) -> None:
    """Train the MobileNetV2 lesion classifier on mask-guided lesion crops."""
    from train.classify import ClassifyConfig, train_classifier

    config = ClassifyConfig(
        images=str(images), labels=str(labels) if labels else None, masks=str(masks) if masks else None,
        out=str(out), backbone_weights=backbone_weights, input_size=input_size, alpha=alpha,
        crop_margin=crop_margin, imbalance=imbalance, head_epochs=head_epochs, epochs=epochs,
        batch_size=batch_size, learning_rate=learning_rate, patience=patience, seed=seed,
        strategy=strategy, logical_cpus=logical_cpus, limit=limit,
    )
    report = train_classifier(config)
    _print_report(report, out)


def _print_report(report: dict, out: Path) -> None:
    from rich.table import Table

    table = Table(title=f"run: {out}")
    table.add_column("split")
    keys = [k for k in ("dice", "iou", "accuracy", "balanced_accuracy", "macro_auc") if k in report.get("test", report.get("val", {}))]
    for key in ["n", *keys]:
        table.add_column(key, justify="right")
    for split in ("val", "test"):
        if split in report:
            row = report[split]
            table.add_row(split, str(row["n"]), *(f"{row[k]:.4f}" for k in keys))
    Console().print(table)


def run() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
