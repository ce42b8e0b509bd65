"""`dermedge predict`: results of the edge pipeline as a table, JSON, JSON Lines, CSV and overlay images.

A long batch survives interruption. `--csv` and `--jsonl` get each image's row the moment it is made,
`--json` (one document) is written at the end, and on Ctrl-C too with what finished and
`"interrupted": true`. `--resume` reads the files back and does only the images they lack.

Memory stays flat however many images a batch has: a result goes to the outputs and is let go. The
terminal shows the first `TABLE_ROWS` results and a bounded latency summary; `--json`'s results wait
in a spool file beside the document (not in memory) until it is written; `--jsonl` is the streaming
form of the same objects. What a batch holds for its whole run is per input, made before the first
image: the list of paths, and what `--resume` read back.
"""

from __future__ import annotations

import csv
import heapq
import json
import os
import sys
import tempfile
from array import array
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dermedge.commands.batch import Skipped, run_pipeline, stdout_console
from dermedge.errors import DermedgeError
from edge_runtime.image_io import find_images
from edge_runtime.overlay import draw_overlay, write_rgb
from edge_runtime.pipeline import Pipeline, Result
from edge_runtime.synthetic import draw_lesion

stderr = Console(stderr=True)
TABLE_ROWS = 40  # a folder of thousands is summarised, not dumped on the terminal
INTERRUPTED = 130  # the exit status of a batch stopped by Ctrl-C (128 + SIGINT), as shells use


def _record(path: str, result: Result) -> dict:
    return {"path": path, **result.to_dict()}


def _table(records: list[dict], title: str, total: int | None = None) -> Table:
    """The first `TABLE_ROWS` of `records`, out of `total` results (default: len(records))."""
    total = len(records) if total is None else total
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
    if total > TABLE_ROWS:
        table.caption = f"first {TABLE_ROWS} of {total} images; all are in --json/--jsonl/--csv"
    return table


class _Summary:
    """What the terminal shows of a batch: the count, the first `TABLE_ROWS` results and the median
    latency. The latencies are kept as 4-byte floats (40 KB per 10,000 images), the records not."""

    def __init__(self) -> None:
        self.count = 0
        self.first: list[dict] = []
        self._latencies = array("f")

    def add(self, record: dict) -> None:
        self.count += 1
        if len(self.first) < TABLE_ROWS:
            self.first.append(record)
        self._latencies.append(record["latency_ms"]["total"])

    def median_ms(self) -> float:
        return float(np.median(np.frombuffer(self._latencies, np.float32)))


def _json_text(payload: dict, results: Iterable[dict] | None = None) -> Iterator[str]:
    """`json.dumps(payload, indent=2) + "\\n"` in pieces, with `payload["results"]` taken from
    `results` when given, one at a time: a document of a million results is never one string."""
    if results is None:
        yield json.dumps(payload, indent=2) + "\n"
        return
    yield "{"
    for n, (key, value) in enumerate(payload.items()):
        yield ("," if n else "") + f"\n  {json.dumps(key)}: "
        if key != "results":
            yield json.dumps(value, indent=2).replace("\n", "\n  ")
            continue
        opened = False
        for r in results:
            yield (",\n    " if opened else "[\n    ") + json.dumps(r, indent=2).replace("\n", "\n    ")
            opened = True
        yield "\n  ]" if opened else "[]"
    yield "\n}\n"


def _write_json(target: Path, payload: dict, results: Iterable[dict] | None = None) -> None:
    """Write `payload` as a JSON document (see `_json_text` for `results`)."""
    if str(target) == "-":
        sys.stdout.writelines(_json_text(payload, results))
        sys.stdout.flush()
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_file():  # /dev/null, a named pipe: written in place
        with open(target, "w", encoding="utf-8") as f:
            f.writelines(_json_text(payload, results))
        return
    # Written beside the file, then renamed over it: a kill mid-write leaves the old document or the
    # new one, never half of one.
    final = target.resolve()
    partial = final.with_name(f".{final.name}.partial")
    with open(partial, "w", encoding="utf-8") as f:
        f.writelines(_json_text(payload, results))
    os.replace(partial, final)


def _csv_columns(labels: tuple[str, ...]) -> list[str]:
    return ["path", "label", "confidence", "malignant_probability", "malignant", "lesion_found",
            "box", "lesion_area_fraction", "inconclusive_reason", "total_ms", *(f"p_{k}" for k in labels)]


def _csv_row(r: dict, labels: tuple[str, ...]) -> list:
    return [r["path"], r["label"], r["confidence"], r["malignant_probability"], r["malignant"],
            r["lesion_found"], " ".join(map(str, r["box"] or [])), r["lesion_area_fraction"],
            r["inconclusive_reason"] or "", r["latency_ms"]["total"], *(r["probabilities"][k] for k in labels)]


def _read_back(target: Path, parse: Callable[[str], object]) -> list:
    """The parsed lines of a results file that `--resume` continues (`parse` returns None to skip one).

    A last line without its newline, or one that does not parse, is what a kill or power cut in the
    middle of a write leaves: it is dropped, and cut off the file so that appended rows start on a
    line of their own; its image is done again. A broken line anywhere else is not guessed about.
    """
    data = target.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # the tail, after the last newline, was cut short
    items, end = [], 0
    for number, raw in enumerate(complete, 1):
        try:
            item = parse(raw.rstrip(b"\r").decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError and json.JSONDecodeError are ValueErrors too
            if number < len(complete) or tail:
                raise DermedgeError(f"{target}, line {number}: {exc}; --resume does not continue a damaged "
                                    "file (move it aside, or drop --resume to start it again)") from None
            break
        if item is not None:
            items.append(item)
        end += len(raw) + 1
    if end < len(data):
        with open(target, "r+b") as f:
            f.truncate(end)
        stderr.print(f"{escape(str(target))}: dropped an incomplete last line; its image is done again",
                     highlight=False, soft_wrap=True)
    return items


# The outputs of a batch. Each knows the paths it already held when the batch began (`done`: results,
# `failed`: unreadable images it recorded), read back by --resume; `add` writes one result, `add_error`
# one unreadable image. Neither grows those sets: the batch does each path once (predict_files drops
# repeated paths) and counts what it wrote itself, so an output holds nothing per image it writes.
#
# CSV and JSONL rows are flushed one by one (to the OS, not os.fsync'd: a sync per row would cost more
# than the row). A kill -9 therefore loses at most the image in flight; a power cut can also lose what
# the OS had not yet written back, and --resume redoes those images (dropping a torn last line).


class _CsvOutput:
    keeps_errors = False  # one row per result; an unreadable image has no row (it is in --jsonl/--json)
    to_stdout = False
    on_disk = True

    def __init__(self, target: Path, labels: tuple[str, ...], resume: bool):
        self.target, self.label, self.labels = target, str(target), labels
        self.columns = _csv_columns(labels)
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.resume = resume and target.is_file()
        if self.resume:
            self._header_seen = False
            self.done = set(_read_back(target, self._parse))
        self.file = None

    def _parse(self, text: str) -> str | None:
        fields = next(csv.reader([text]), [])
        if not self._header_seen:
            if fields != self.columns:
                raise DermedgeError(f"{self.target} has other columns than this bundle variant writes "
                                    "(other labels?); give another --csv file, or drop --resume to replace it")
            self._header_seen = True
            return None
        if len(fields) != len(self.columns):
            raise ValueError(f"{len(fields)} fields, not {len(self.columns)}")
        return fields[0]

    def open(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.target, "a" if self.resume else "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.file)
        if self.file.tell() == 0:  # a new file, or one whose only line was torn
            self.writer.writerow(self.columns)
            self.file.flush()

    def add(self, record: dict) -> None:
        self.writer.writerow(_csv_row(record, self.labels))  # one write of the whole line
        self.file.flush()

    def add_error(self, path: str, reason: str) -> None:
        pass

    def close(self, interrupted: bool, paths: list[Path], problems: list[dict]) -> None:
        if self.file is not None:
            self.file.close()


def _parse_jsonl(text: str) -> dict | None:
    if not text.strip():
        return None
    line = json.loads(text)
    if not (isinstance(line, dict) and isinstance(line.get("path"), str) and ("label" in line or "error" in line)):
        raise ValueError("not a dermedge predict result line")
    return line


class _JsonlOutput:
    """One JSON object a line: a result as in the --json document, or {"path": ..., "error": ...}."""

    keeps_errors = True

    def __init__(self, target: Path, resume: bool):
        self.target = target
        self.to_stdout = str(target) == "-"
        self.on_disk = not self.to_stdout
        self.label = "stdout" if self.to_stdout else str(target)
        self.resume = resume and self.on_disk and target.is_file()
        # what an earlier run wrote; --json's document takes it over when it was never written
        self.previous: list[dict] = _read_back(target, _parse_jsonl) if self.resume else []
        self.done = {line["path"] for line in self.previous if "error" not in line}
        self.failed = {line["path"] for line in self.previous if "error" in line}
        self.file = None

    def open(self) -> None:
        if self.to_stdout:
            self.file = sys.stdout
            return
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.target, "a" if self.resume else "w", encoding="utf-8")

    def _write(self, line: dict) -> None:
        self.file.write(json.dumps(line) + "\n")  # one write of the whole line
        self.file.flush()

    def add(self, record: dict) -> None:
        self._write(record)

    def add_error(self, path: str, reason: str) -> None:
        self._write({"path": path, "error": reason})

    def close(self, interrupted: bool, paths: list[Path], problems: list[dict]) -> None:
        if self.file is not None and not self.to_stdout:
            self.file.close()


class _JsonDocument:
    """The whole-run document, written at the end (also when interrupted). This run's results and
    unreadable images wait in an unnamed spool file (beside the document; in the temporary folder for
    stdout or a device), one JSON line each, not in memory; what --resume read back is held as read."""

    keeps_errors = True

    def __init__(self, target: Path, header: dict, resume: bool, jsonl: _JsonlOutput | None):
        self.target, self.header = target, header
        self.to_stdout = str(target) == "-"
        self.on_disk = not self.to_stdout
        self.label = "stdout" if self.to_stdout else str(target)
        previous: list[dict] = []
        if resume and self.on_disk:
            if target.is_file():
                previous = self._read()
            elif jsonl is not None and jsonl.on_disk:  # killed before the document was written
                previous = jsonl.previous
        self.results = [r for r in previous if "error" not in r]
        self.skipped = [r for r in previous if "error" in r]
        self.done = {r["path"] for r in self.results}
        self.failed = {r["path"] for r in self.skipped}
        self.spool = None

    def _read(self) -> list[dict]:
        try:
            doc = json.loads(self.target.read_text())
        except ValueError as exc:
            raise DermedgeError(f"{self.target} is not JSON ({exc}); move it aside, or drop --resume "
                                "to replace it") from None
        if not (isinstance(doc, dict) and isinstance(doc.get("results"), list)):
            raise DermedgeError(f"{self.target} is not a `dermedge predict --json` document")
        for key in ("variant", "labels"):
            if doc.get(key) != self.header[key]:
                raise DermedgeError(f"{self.target} holds results of {key} {doc.get(key)}, not "
                                    f"{self.header[key]}; give another --json file, or drop --resume to replace it")
        return doc["results"] + doc.get("skipped", [])

    def open(self) -> None:
        folder = None  # stdout, /dev/null, a pipe: the temporary folder
        if self.on_disk and (self.target.is_file() or not self.target.exists()):
            folder = self.target.resolve().parent
            folder.mkdir(parents=True, exist_ok=True)
        self.spool = tempfile.TemporaryFile("w+", encoding="utf-8", dir=folder, prefix=".dermedge-predict-")

    def add(self, record: dict) -> None:
        self.spool.write(json.dumps(record) + "\n")

    def add_error(self, path: str, reason: str) -> None:
        self.spool.write(json.dumps({"path": path, "error": reason}) + "\n")

    def _spooled(self, errors: bool) -> Iterator[dict]:
        self.spool.seek(0)
        for line in self.spool:
            item = json.loads(line)
            if ("error" in item) == errors:
                yield item

    def close(self, interrupted: bool, paths: list[Path], problems: list[dict]) -> None:
        if self.spool is None:
            return
        self.spool.flush()
        results: Iterable[dict] = self._spooled(False)  # in the order of the inputs
        if self.results:  # a resumed run: the earlier results merged in, in the inputs' order
            order = {str(p): i for i, p in enumerate(paths)}
            key = lambda r: order.get(r["path"], len(order))  # noqa: E731
            results = heapq.merge(sorted(self.results, key=key), results, key=key)
        skipped = [p for p in problems if p not in self.skipped] + self.skipped + list(self._spooled(True))
        _write_json(self.target, {**self.header, "results": None, "skipped": skipped, "interrupted": interrupted},
                    results)
        self.spool.close()


OVERLAY_SUFFIX = ".overlay.jpg"
MASK_SUFFIX = "_segmentation.png"  # HAM10000 / ISIC naming: `--masks DIR` of train and evaluate reads it


def _output_names(folder: Path, paths: list[Path], suffix: str) -> dict[Path, Path]:
    """`<stem><suffix>` in `folder` for each input, numbered when two inputs share a stem; the same
    names on a resume, since they depend on the input list only."""
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    names = {}
    for path in paths:
        name, n = f"{path.stem}{suffix}", 1
        while name in used:
            n += 1
            name = f"{path.stem}.{n}{suffix}"
        used.add(name)
        names[path] = folder / name
    return names


def write_mask(path: Path, mask: np.ndarray) -> None:
    """The cleaned lesion mask at image size as a 0/255 PNG (all zero when no lesion was found: the
    crop is then the whole image, as in the pipeline)."""
    if not cv2.imwrite(str(path), mask.astype(np.uint8) * 255):
        raise OSError(f"cannot write {path}")


def _header(pipeline: Pipeline) -> dict:
    return {"bundle": str(pipeline.bundle.root), "variant": pipeline.variant, "backend": pipeline.backend,
            "labels": list(pipeline.labels), "malignant_labels": list(pipeline.malignant_labels)}


def _outputs(pipeline: Pipeline, json_out: Path | None, jsonl_out: Path | None, csv_out: Path | None,
             resume: bool) -> list:
    """The outputs asked for, with what --resume finds in them; no file is opened (or emptied) yet."""
    if json_out and jsonl_out and str(json_out) == str(jsonl_out) == "-":
        raise DermedgeError("--json - and --jsonl - would both write to stdout; send one of them to a file")
    if resume and not any(out and str(out) != "-" for out in (csv_out, jsonl_out, json_out)):
        raise DermedgeError("--resume continues the --csv, --jsonl or --json file of an earlier run: give one")
    outputs: list = []
    if csv_out:
        outputs.append(_CsvOutput(csv_out, pipeline.labels, resume))
    jsonl = _JsonlOutput(jsonl_out, resume) if jsonl_out else None
    if jsonl:
        outputs.append(jsonl)
    if json_out:
        outputs.append(_JsonDocument(json_out, _header(pipeline), resume, jsonl))
    if jsonl:
        jsonl.previous = []  # read back for the document above, not held for the run
    return outputs


def predict_files(pipeline: Pipeline, inputs: list[str], json_out: Path | None, csv_out: Path | None,
                  overlay: Path | None, jsonl_out: Path | None = None, resume: bool = False,
                  masks_out: Path | None = None) -> int:
    """Predict every image of `inputs` into the outputs asked for. Returns the exit status: 0, or
    130 when Ctrl-C stopped the batch (what finished is saved, and one line says where).

    `masks_out` receives each image's cleaned mask as `<stem>_segmentation.png`: the masks the
    deployed crops are cut from, readable as `--masks` by `train classify` and `evaluate segment`.

    A path found twice (a file and its folder) is done once. Memory does not grow with the images done
    (see the module docstring): results go to the outputs, and the batch keeps counts, the first
    `TABLE_ROWS` results for the terminal and the first 20 skipped files for the report.
    """
    paths, problems = find_images(inputs)
    paths = list(dict.fromkeys(paths))
    skipped = Skipped(keep=20)
    for path, reason in problems:
        skipped.add(path, reason)
    outputs = _outputs(pipeline, json_out, jsonl_out, csv_out, resume)
    on_disk = [o for o in outputs if o.on_disk]  # stdout outputs get every image this run does
    # An image to do is one a file lacks; one an earlier run found unreadable (recorded in --jsonl or
    # --json) is not retried, not even for the CSV, which has no row for it.
    failed = set().union(*(o.failed for o in on_disk))

    def lacks(output, path: str) -> bool:
        return path not in output.done and path not in (output.failed if output.keeps_errors else failed)

    pending = [p for p in paths if any(lacks(o, str(p)) for o in on_disk)] if resume else paths
    before = len(paths) - len(pending)
    if before:
        todo = set(pending)
        unreadable = sum(str(p) in failed for p in paths if p not in todo)
        stderr.print(f"resuming: {before - unreadable} of {len(paths)} images already in "
                     f"{escape(', '.join(o.label for o in on_disk))}"
                     + (f" ({unreadable} unreadable, not retried)" if unreadable else "")
                     + f"; {len(pending)} to do", highlight=False, soft_wrap=True)
    elif resume and any(o.done for o in on_disk):
        stderr.print("[yellow]resuming: no image of these inputs is in the existing output; paths are compared "
                     "as written, so run from the same folder with the same arguments[/]",
                     highlight=False, soft_wrap=True)
    overlay_of = _output_names(overlay, paths, OVERLAY_SUFFIX) if overlay else {}
    mask_of = _output_names(masks_out, paths, MASK_SUFFIX) if masks_out else {}

    # This run's unreadable images that an output on disk recorded (each pending path comes once, and
    # none was recorded as unreadable before: see `lacks`)
    recorded_unreadable = 0

    def record_error(path: str, reason: str) -> None:
        nonlocal recorded_unreadable
        recorded = False
        for o in outputs:
            if o.keeps_errors and path not in o.done and path not in o.failed:
                o.add_error(path, reason)
                recorded = recorded or o.on_disk
        recorded_unreadable += recorded

    for o in outputs:
        o.open()
    skipped.on_add = record_error
    summary, finished = _Summary(), False
    try:
        for path, image, result in run_pipeline(pipeline, pending, skipped, stderr, "predicting"):
            record = _record(str(path), result)
            if overlay:
                write_rgb(overlay_of[path], draw_overlay(image, result))
            if masks_out:
                write_mask(mask_of[path], result.mask)
            for o in outputs:
                if record["path"] not in o.done and record["path"] not in o.failed:
                    o.add(record)
            summary.add(record)  # the record is let go here, unless it is one of the table's first rows
        finished = True
    except KeyboardInterrupt:
        pass
    finally:
        for o in outputs:
            o.close(not finished, paths, [{"path": p, "error": r} for p, r in problems])

    if not finished:  # Ctrl-C: one line, no traceback, no table
        if on_disk:
            # in every file: what all of them held before, and each result of this run (written to
            # each file that lacked it)
            saved = sum(all(str(p) in o.done for o in on_disk) for p in paths) + summary.count
            unreadable = sum(any(str(p) in o.failed for o in on_disk) for p in paths) + recorded_unreadable
            stderr.print(f"interrupted: {saved} of {len(paths)} images written to "
                         f"{escape(', '.join(o.label for o in outputs))}"
                         + (f" ({unreadable} unreadable)" if unreadable else "")
                         + "; rerun with --resume to continue", highlight=False, soft_wrap=True)
        elif outputs:
            stderr.print(f"interrupted: {summary.count} of {len(paths)} images written to stdout",
                         highlight=False, soft_wrap=True)
        else:
            stderr.print(f"interrupted: {summary.count} of {len(paths)} images analysed, none saved "
                         "(--csv or --jsonl keep results as they are made)", highlight=False, soft_wrap=True)
        return INTERRUPTED
    if summary.count and not any(o.to_stdout for o in outputs):
        stdout_console().print(_table(summary.first, f"{summary.count} image(s), {pipeline.variant}",
                                      summary.count))
    skipped.report(stderr)
    if not summary.count and not before:
        raise DermedgeError(f"no image could be analysed ({len(skipped)} skipped)")
    line = f"{summary.count} analysed, {len(skipped)} skipped"
    if before:
        line += f", {before} already done"
    if summary.count:
        line += f"; median {summary.median_ms():.1f} ms/image"
    stderr.print(f"{line}. Research output, not a diagnosis.", highlight=False)
    return 0


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
