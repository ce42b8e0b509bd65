"""The benchmark's result rendered: two tables (what a variant is and scores; how fast it runs), the
target checks, the quantization-error summary, as rich tables or Markdown, and two plots."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from dermedge.metrics import format_points

ACCURACY_COLUMNS = ("variant", "format", "bytes", "gzip", "params", "sparsity", "MMACs seg+cls", "Dice", "IoU",
                    "bal. acc", "Δ bal. acc vs float [95% CI]", "macro AUC", "mel. sens.", "top-1 agree",
                    "mask Dice vs float")
SPEED_COLUMNS = ("variant", "threads", "segment p50", "classify p50", "e2e p50", "e2e p90", "e2e p99", "FPS",
                 "× Keras", "× Keras graph", "× fp32", "GMAC/s (% peak)", "load ms", "peak RSS MB")


def _num(value, spec: str, empty: str = "") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and value == value else empty


def accuracy_rows(result: dict) -> list[list[str]]:
    """One row per variant (the first thread count's row carries the shared figures)."""
    seen, rows = set(), []
    for row in result["rows"]:
        if row["variant"] in seen:
            continue
        seen.add(row["variant"])
        m, files, macs = row.get("metrics", {}), row.get("files", {}), row.get("macs")
        sparsity = [f.get("weight_sparsity") for f in files.values() if f.get("weight_sparsity") is not None]
        rows.append([
            row["variant"], row["format"], _num(row["bytes"], ","), _num(row.get("gzip_bytes"), ","),
            _num(row.get("parameters"), ","), " / ".join(f"{s:.0%}" for s in sparsity),
            f"{macs['segmenter'] / 1e6:.0f} + {macs['classifier'] / 1e6:.0f}" if macs else "",
            _num(m.get("dice"), ".4f"), _num(m.get("iou"), ".4f"), _num(m.get("balanced_accuracy"), ".4f"),
            format_points(m["balanced_accuracy_vs_float_ci95"]) if m.get("balanced_accuracy_vs_float_ci95") else "",
            _num(m.get("macro_auc"), ".4f"), _num(m.get("melanoma_sensitivity"), ".3f"),
            _num(m.get("top1_agreement"), ".3f"), _num(m.get("mask_dice_vs_float"), ".4f"),
        ])
    return rows


def speed_rows(result: dict) -> list[list[str]]:
    rows = []
    for row in result["rows"]:
        latency = row.get("latency_ms")
        if not latency:
            continue
        stages, speedup = latency["stages"], row.get("speedup", {})
        peak = row.get("peak_fraction")
        achieved = _num(row.get("gmacs_per_s"), ".1f")
        if peak and achieved:
            achieved += f" ({peak['value']:.0%})"
        rows.append([
            row["variant"], str(row["threads"]), _num(stages["segment"]["p50"], ".2f"),
            _num(stages["classify"]["p50"], ".2f"), _num(latency["p50"], ".2f"), _num(latency["p90"], ".2f"),
            _num(latency["p99"], ".2f"), _num(row.get("fps"), ".0f"), _num(speedup.get("vs_keras"), ".1f"),
            _num(speedup.get("vs_keras_graph"), ".1f"), _num(speedup.get("vs_fp32"), ".2f"), achieved, _num(row.get("load_ms"), ".0f"),
            _num(row.get("peak_rss_mb"), ".0f"),
        ])
    return rows


def target_rows(result: dict) -> list[list[str]]:
    return [[c["variant"], c["check"], f"{c['value']:g}", f"{'≥' if c['check'] != 'p50_ms' else '≤'} {c['target']:g}",
             "met" if c["met"] else "NOT met"] for c in result["targets"]]


def quantization_lines(result: dict, per_model: int = 3) -> list[str]:
    lines = []
    for variant, roles in result.get("quantization_error", {}).items():
        for role, found in roles.items():
            worst = ", ".join(f"{w['op']} {_short(w['tensor'])} {w['scaled_rmse']:.3f}"
                              for w in found["worst_int8_layers"][:per_model])
            kept = len(found.get("float_layers") or [])
            lines.append(f"{role} (QuantizationDebugger at export, recorded with {variant}): worst int8 "
                         f"tensors by scaled RMSE: {worst}" + (f"; {variant} keeps {kept} in float" if kept else ""))
    effect = result.get("keep_float_effect")
    if effect:
        lines.append(f"{effect['variant']} against int8 (1 thread): top-1 agreement {effect['top1_agreement']}, "
                     f"balanced accuracy {effect['balanced_accuracy']}, end-to-end p50 {effect['p50_ms']} ms")
    return lines


def _short(tensor: str) -> str:
    """The Keras layer a TFLite tensor came from: 'model/block_2_depthwise/...;...' -> block_2_depthwise."""
    parts = tensor.split(";")[0].split("/")
    return parts[-2] if len(parts) > 2 else parts[0]


def machine_line(result: dict) -> str:
    m = result["machine"]
    peak = m["peak"]
    line = (f"{m['cpu']} ({m['architecture']}, {m['logical_cores']} logical cores, "
            f"{m['clock_ghz']} GHz; {' '.join(m['isa_flags'])}), {m['os']}, Python {m['python']}, "
            + ", ".join(f"{k} {v}" for k, v in m["packages"].items()))
    if peak.get("theoretical"):
        line += f". Peak per core: fp32 {peak['theoretical']['fp32_gmacs_per_core']} GMAC/s, int8 " \
                f"{peak['theoretical']['int8_gmacs_per_core']} GMAC/s ({peak['theoretical']['derivation']})"
    if peak.get("measured_sgemm_gmacs_1_thread"):
        line += f"; measured numpy sgemm {peak['measured_sgemm_gmacs_1_thread']} GMAC/s on 1 thread"
    return line


def rich_tables(result: dict) -> list[Table]:
    tables = []
    for title, columns, rows in (("size and accuracy", ACCURACY_COLUMNS, accuracy_rows(result)),
                                 ("speed (ms; e2e = segment + clean-up/gate/crop + classify)", SPEED_COLUMNS,
                                  speed_rows(result)),
                                 ("targets (1 thread)", ("variant", "check", "value", "target", "result"),
                                  target_rows(result))):
        if not rows:
            continue
        table = Table(title=title)
        for column in columns:
            table.add_column(column, justify="left" if column in ("variant", "format", "check", "result") else "right")
        for row in rows:
            table.add_row(*row)
        tables.append(table)
    return tables


def _markdown_table(columns, rows) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(["---"] + ["---:"] * (len(columns) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def markdown(result: dict) -> str:
    s = result["settings"]
    parts = [
        f"Bundle `{result['bundle']}`; {s['images']} labelled images; agreement against "
        f"{s['agreement_reference'] or 'nothing'}; latency on {s['latency_images']} {s['latency_inputs']}, "
        f"{s['warmup']} warm-up + {s['runs']} runs per variant, interleaved in blocks of {s['block']}; Keras: "
        f"{s['keras']}.",
        "", f"Machine: {machine_line(result)}.", "",
        _markdown_table(ACCURACY_COLUMNS, accuracy_rows(result)), "",
        _markdown_table(SPEED_COLUMNS, speed_rows(result)),
    ]
    if result["targets"]:
        parts += ["", _markdown_table(("variant", "check", "value", "target", "result"), target_rows(result))]
    lines = quantization_lines(result)
    if lines:
        parts += ["", *(f"- {line}" for line in lines)]
    return "\n".join(parts) + "\n"


def plot(result: dict, out: Path) -> list[Path]:
    """accuracy_vs_size.png (when there is accuracy) and latency.png (stacked stage p50, p90 whisker)."""
    from dermedge.reports import _pyplot

    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    first = {}
    for row in result["rows"]:
        first.setdefault(row["variant"], row)
    scored = [r for r in first.values() if r.get("metrics", {}).get("balanced_accuracy") is not None
              and r["variant"] != "keras-graph"]  # the same model and figures as the keras row
    if scored:
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for r in scored:
            ax.scatter(r["bytes"] / 1e6, r["metrics"]["balanced_accuracy"], s=40)
            ax.annotate(r["variant"], (r["bytes"] / 1e6, r["metrics"]["balanced_accuracy"]),
                        textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plt.matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(plt.matplotlib.ticker.NullFormatter())
        ax.set_xticks([0.5, 1, 2, 3, 5, 8])
        ax.set_xlabel("segmenter + classifier size (MB, log scale)")
        ax.set_ylabel("balanced accuracy (deployed pipeline)")
        ax.set_title("accuracy vs size")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "accuracy_vs_size.png", dpi=120)
        plt.close(fig)
        written.append(out / "accuracy_vs_size.png")
    timed = [r for r in result["rows"] if r.get("latency_ms")]
    if timed:
        labels = [f"{r['variant']} ({r['threads']}t)" for r in timed]
        fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(timed) + 1.5))
        left = [0.0] * len(timed)
        for stage, colour in (("segment", "#4c72b0"), ("crop", "#c0c0c0"), ("classify", "#dd8452")):
            values = [r["latency_ms"]["stages"][stage]["p50"] for r in timed]
            ax.barh(labels, values, left=left, color=colour, label=f"{stage} p50")
            left = [a + b for a, b in zip(left, values)]
        p50 = [r["latency_ms"]["p50"] for r in timed]
        p90 = [r["latency_ms"]["p90"] for r in timed]
        ax.errorbar(p50, labels, xerr=[[0] * len(timed), [b - a for a, b in zip(p50, p90)]], fmt="none",
                    ecolor="black", capsize=3, label="end-to-end p50 → p90")
        for y, (a, b) in enumerate(zip(p50, p90)):
            ax.annotate(f"{a:.1f} ms", (b, y), textcoords="offset points", xytext=(6, -3), fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("ms per image")
        ax.set_title("latency per variant")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3, axis="x")
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=120)
        plt.close(fig)
        written.append(out / "latency.png")
    return written
