"""The one table of a bundle's variants (size, agreement with Keras, task metrics), built from the
manifest alone and rendered for the terminal (export, `info`) or as Markdown (the README)."""

from __future__ import annotations

from rich.table import Table

from dermedge.export.formats import VARIANTS_BY_NAME
from dermedge.metrics import format_points

COLUMNS = ("variant", "seg bytes", "cls bytes", "cls gzip", "top-1 agree", "max Δp", "bal. acc",
           "Δ bal. acc [95% CI]", "macro AUC", "mel. sens.", "mask Dice vs Keras", "Dice", "IoU")


def _fmt(figures: dict, key: str, spec: str) -> str:
    value = figures.get(key)
    return format(value, spec) if isinstance(value, (int, float)) else "spec ok"


def _difference(figures: dict) -> str:
    """Paired bootstrap interval of balanced accuracy minus Keras', in points (older manifests: blank)."""
    interval = figures.get("balanced_accuracy_vs_float_ci95")
    if interval is None:
        return "" if "balanced_accuracy" in figures else "spec ok"
    return format_points(interval)


def variant_rows(manifest: dict) -> list[list[str]]:
    """One row per variant, led by the Keras float models it is measured against."""
    ref = manifest["keras_reference"]
    rows = [["keras (float)", "", "", "", "1.000", "0", f"{ref['classifier']['balanced_accuracy']:.4f}",
             "", f"{ref['classifier']['macro_auc']:.4f}", _fmt(ref["classifier"], "melanoma_sensitivity", ".3f"),
             "1.000", f"{ref['segmenter']['dice']:.4f}", f"{ref['segmenter']['iou']:.4f}"]]
    for name, variant in manifest["variants"].items():
        seg, cls = variant["metrics"]["segmenter"], variant["metrics"]["classifier"]
        files = variant["files"]
        gzip = files["classifier"].get("gzip_bytes")
        rows.append([name, f"{files['segmenter']['bytes']:,}", f"{files['classifier']['bytes']:,}",
                     f"{gzip:,}" if gzip else "", _fmt(cls, "top1_agreement", ".3f"),
                     _fmt(cls, "max_prob_diff", ".3f"), _fmt(cls, "balanced_accuracy", ".4f"),
                     _difference(cls), _fmt(cls, "macro_auc", ".4f"), _fmt(cls, "melanoma_sensitivity", ".3f"),
                     _fmt(seg, "mask_dice_vs_float", ".4f"), _fmt(seg, "dice", ".4f"), _fmt(seg, "iou", ".4f")])
    return rows


def rich_table(manifest: dict, title: str) -> Table:
    table = Table(title=title)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "variant" else "right")
    for row in variant_rows(manifest):
        table.add_row(*row)
    return table


def markdown_table(manifest: dict) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] + ["---:"] * (len(COLUMNS) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in variant_rows(manifest)]
    return "\n".join(lines)


def sparsity_lines(manifest: dict) -> list[str]:
    """What pruning bought: kernel sparsity, and gzip size against the unpruned int8 file."""
    lines = []
    for name, variant in manifest["variants"].items():
        for role, report in variant.get("sparsity", {}).items():
            line = f"{name} {role}: kernel sparsity {report['total']:.1%} of {report['kernel_weights']:,} weights"
            pruned_gzip = variant["files"][role].get("gzip_bytes")
            baseline = VARIANTS_BY_NAME[name].baseline if name in VARIANTS_BY_NAME else None
            base = manifest["variants"].get(baseline, {}).get("files", {}).get(role, {}).get("gzip_bytes")
            if pruned_gzip and base:
                line += f"; gzip {pruned_gzip:,} B vs {base:,} B unpruned {baseline} ({pruned_gzip / base - 1:+.1%})"
            lines.append(line)
    return lines
