"""`dermedge predict`: results of the edge pipeline as a table, JSON, CSV and overlay images."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from dermedge.commands.batch import Skipped, run_pipeline, stdout_console
from dermedge.errors import DermedgeError
from edge_runtime.image_io import find_images
from edge_runtime.overlay import draw_overlay, write_rgb
from edge_runtime.pipeline import Pipeline, Result
from edge_runtime.synthetic import draw_lesion

stderr = Console(stderr=True)
TABLE_ROWS = 40  # a folder of thousands is summarised, not dumped on the terminal


def _record(path: str, result: Result) -> dict:
    return {"path": path, **result.to_dict()}


def _table(records: list[dict], title: str) -> Table:
    table = Table(title=title)
    for column in ("image", "label", "conf.", "malignant p", "lesion", "inconclusive", "ms"):
        table.add_column(column, justify="left" if column in ("image", "label", "inconclusive") else "right")
    for r in records[:TABLE_ROWS]:
        colour = "red" if r["malignant"] else "green"
        table.add_row(Path(r["path"]).name, r["label"], f"{r['confidence']:.2f}",
                      f"[{colour}]{r['malignant_probability']:.2f}[/]",
                      "yes" if r["lesion_found"] else "[yellow]none found[/]",
                      f"[yellow]{r['inconclusive_reason']}[/]" if r["inconclusive_reason"] else "",
                      f"{r['latency_ms']['total']:.1f}")
    if len(records) > TABLE_ROWS:
        table.caption = f"first {TABLE_ROWS} of {len(records)} images; all are in --json/--csv"
    return table


def _write_json(target: Path, payload: dict) -> None:
    text = json.dumps(payload, indent=2) + "\n"
    if str(target) == "-":
        sys.stdout.write(text)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def _write_csv(target: Path, records: list[dict], labels: tuple[str, ...]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "confidence", "malignant_probability", "malignant", "lesion_found",
                         "box", "lesion_area_fraction", "inconclusive_reason", "total_ms",
                         *(f"p_{k}" for k in labels)])
        for r in records:
            writer.writerow([r["path"], r["label"], r["confidence"], r["malignant_probability"], r["malignant"],
                             r["lesion_found"], " ".join(map(str, r["box"] or [])), r["lesion_area_fraction"],
                             r["inconclusive_reason"] or "", r["latency_ms"]["total"],
                             *(r["probabilities"][k] for k in labels)])


def _overlay_path(folder: Path, path: Path, used: set[str]) -> Path:
    """`<stem>.overlay.jpg`, numbered when two inputs share a stem."""
    name, n = f"{path.stem}.overlay.jpg", 1
    while name in used:
        n += 1
        name = f"{path.stem}.{n}.overlay.jpg"
    used.add(name)
    return folder / name


def _header(pipeline: Pipeline) -> dict:
    return {"bundle": str(pipeline.bundle.root), "variant": pipeline.variant, "backend": pipeline.backend,
            "labels": list(pipeline.labels), "malignant_labels": list(pipeline.malignant_labels)}


def predict_files(pipeline: Pipeline, inputs: list[str], json_out: Path | None, csv_out: Path | None,
                  overlay: Path | None) -> None:
    paths, problems = find_images(inputs)
    skipped = Skipped()
    for path, reason in problems:
        skipped.add(path, reason)
    if overlay:
        overlay.mkdir(parents=True, exist_ok=True)
    records, used = [], set()
    for path, image, result in run_pipeline(pipeline, paths, skipped, stderr, "predicting"):
        records.append(_record(str(path), result))
        if overlay:
            write_rgb(_overlay_path(overlay, path, used), draw_overlay(image, result))
    if json_out:
        _write_json(json_out, {**_header(pipeline), "results": records, "skipped": skipped.as_list()})
    if csv_out:
        _write_csv(csv_out, records, pipeline.labels)
    if records and str(json_out) != "-":
        stdout_console().print(_table(records, f"{len(records)} image(s), {pipeline.variant}"))
    skipped.report(stderr)
    if not records:
        raise DermedgeError(f"no image could be analysed ({len(skipped)} skipped)")
    totals = np.array([r["latency_ms"]["total"] for r in records])
    stderr.print(f"{len(records)} analysed, {len(skipped)} skipped; median {np.median(totals):.1f} ms/image. "
                 "Research output, not a diagnosis.", highlight=False)


def predict_example(pipeline: Pipeline, json_out: Path | None, overlay: Path | None) -> None:
    """The whole path on a procedurally drawn lesion: shows an install works, with no data at hand."""
    image, _ = draw_lesion(np.random.default_rng(7), width=400, height=300)
    result = pipeline.predict(image)
    record = _record("<synthetic example>", result)
    stderr.print("[bold]SYNTHETIC EXAMPLE[/]: a drawn ellipse on skin-coloured noise, not dermoscopy; "
                 "the label below only shows that the pipeline runs.", highlight=False)
    if json_out:
        _write_json(json_out, {**_header(pipeline), "results": [record], "skipped": [], "synthetic": True})
    if str(json_out) != "-":
        stdout_console().print(_table([record], f"synthetic example, {pipeline.variant}"))
        stages = ", ".join(f"{k} {v:.1f} ms" for k, v in result.latency_ms.items())
        stdout_console().print(f"lesion box {result.box}, area {result.lesion_area_fraction:.1%}; {stages}",
                        highlight=False)
    if overlay:
        overlay.mkdir(parents=True, exist_ok=True)
        write_rgb(overlay / "synthetic_example.overlay.jpg", draw_overlay(image, result))
