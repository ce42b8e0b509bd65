"""`dermedge predict` over a large folder holds nothing per image it has done: each result goes to
--csv / --jsonl / --json (spooled to disk) and is let go (issue 17 §5: a million images must not grow
memory). Counted, not timed: the result records alive in the batch's last call, with the default
bundle's pipeline answering a fixed result (the batch loop is what is tested, not the models).
"""

import csv
import gc
import json

import cv2
import numpy as np
import pytest

from dermedge.commands.predict import TABLE_ROWS, _Summary, predict_files
from edge_runtime.image_io import read_image
from edge_runtime.pipeline import Pipeline
from edge_runtime.synthetic import draw_lesion

pytestmark = pytest.mark.runtime  # base install only

N = 150  # well over TABLE_ROWS (40): the old batch held all N records, this one at most the table's
BROKEN = 25  # over the 20 skipped files the report lists


def live_records() -> int:
    """Result records (`_record` dicts) alive now: tracked by the collector, as they hold dicts."""
    return sum(1 for o in gc.get_objects() if isinstance(o, dict) and "malignant_probability" in o and "path" in o)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for i in range(N):
        image, _ = draw_lesion(rng, width=48, height=36, class_index=i % 7)
        cv2.imwrite(str(root / f"img_{i:04d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    for i in range(BROKEN):
        (root / f"zz_broken_{i:02d}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.fixture(scope="module")
def pipeline(folder):
    pipeline = Pipeline.load(None, None, num_threads=1)
    fixed = pipeline.predict(read_image(folder / "img_0000.jpg"))
    calls, alive = [0], []

    def predict(image):
        calls[0] += 1
        if calls[0] == N:  # the last image: what the batch holds after N - 1 results
            gc.collect()
            alive.append(live_records())
        return fixed

    pipeline.predict = predict
    pipeline.calls, pipeline.alive = calls, alive
    return pipeline


def test_a_batch_holds_no_record_per_image(pipeline, folder, tmp_path):
    pipeline.calls[0], pipeline.alive[:] = 0, []
    out_csv, out_jsonl, out_json = tmp_path / "r.csv", tmp_path / "r.jsonl", tmp_path / "r.json"
    # the folder twice and a file of it again: each image is still done, and written, once
    status = predict_files(pipeline, [str(folder), str(folder), str(folder / "img_0003.jpg")], out_json, out_csv,
                           None, jsonl_out=out_jsonl)
    assert status == 0 and pipeline.calls[0] == N
    assert pipeline.alive and pipeline.alive[0] <= TABLE_ROWS + 1, pipeline.alive  # was N - 1 (149)

    rows = list(csv.DictReader(out_csv.open()))
    lines = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    doc = json.loads(out_json.read_text())
    names = [f"img_{i:04d}.jpg" for i in range(N)]
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == names
    assert [r for r in lines if "error" not in r] == doc["results"]  # the spooled document, in input order
    assert [r["path"].rsplit("/", 1)[-1] for r in doc["results"]] == names
    assert len([r for r in lines if "error" in r]) == len(doc["skipped"]) == BROKEN
    assert doc["interrupted"] is False and doc["variant"] == pipeline.variant
    assert not list(tmp_path.glob(".*"))  # no spool or partial file left beside the outputs


def test_the_json_document_alone_is_spooled_too(pipeline, folder, tmp_path, capsys):
    pipeline.calls[0], pipeline.alive[:] = 0, []
    status = predict_files(pipeline, [str(folder)], tmp_path / "r.json", None, None)
    assert status == 0 and pipeline.alive[0] <= TABLE_ROWS + 1, pipeline.alive
    doc = json.loads((tmp_path / "r.json").read_text())
    assert len(doc["results"]) == N and len(doc["skipped"]) == BROKEN
    out = capsys.readouterr()
    assert f"first {TABLE_ROWS} of {N} images" in out.out
    assert f"{N} analysed, {BROKEN} skipped" in out.err and f"and {BROKEN - 20} more skipped files" in out.err


def test_the_summary_keeps_the_first_rows_and_the_exact_median():
    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 5001):
        totals = rng.lognormal(np.log(200), 0.6, n).astype(np.float32)
        summary = _Summary()
        for ms in totals:
            summary.add({"latency_ms": {"total": float(ms)}})
        assert summary.count == n and len(summary.first) == min(n, TABLE_ROWS)
        assert summary.median_ms() == pytest.approx(float(np.median(totals)), rel=1e-6)
