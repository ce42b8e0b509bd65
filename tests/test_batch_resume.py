"""`dermedge predict` on a batch that is interrupted: rows written as they are made, Ctrl-C keeps them,
`--resume` finishes the set, a torn last line (kill -9, power cut) is dropped and its image redone.

Real subprocesses on the installed default bundle: a real SIGINT, a real exit status, real files.
"""

import csv
import json
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from edge_runtime.synthetic import draw_lesion
from time_limits import seconds

pytestmark = pytest.mark.runtime  # base install only

CLI = [sys.executable, "-m", "dermedge.commands.cli", "predict"]
# The same entry point as `python -m dermedge.commands.cli`, with Pipeline.predict held up after the
# first images: 20 ms each for the first 6, then 60 s (an interruptible sleep). The test signals once
# rows have appeared, so the signal always lands mid-batch, however loaded the machine is.
SLOW_CLI = [sys.executable, "-c", "\n".join([
    "import itertools, sys, time",
    "from edge_runtime.pipeline import Pipeline",
    "predict, calls = Pipeline.predict, itertools.count()",
    "Pipeline.predict = lambda self, image: (time.sleep(0.02 if next(calls) < 6 else 60), predict(self, image))[1]",
    "from dermedge.commands.cli import app",
    "sys.exit(app())",
]), "predict"]
MESSAGE = re.compile(r"interrupted: (\d+) of (\d+) images written to (.+?)( \(\d+ unreadable\))?; "
                     r"rerun with --resume to continue")


def make_folder(root, n):
    """`n` small drawn lesions (JPEG) and one corrupt file, which sorts first."""
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        image, _ = draw_lesion(rng, width=96, height=72, class_index=i)
        cv2.imwrite(str(root / f"img_{i:03d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def run(args, cwd):
    return subprocess.run(CLI + args, cwd=cwd, capture_output=True, text=True, timeout=seconds(300))


def csv_rows(path):
    """The data rows, after checking every line is complete: a newline at the end, all the fields."""
    text = path.read_text()
    assert text.endswith("\n"), "the CSV ends in a partial row"
    header, *rows = list(csv.reader(text.splitlines()))
    assert header[:2] == ["path", "label"] and all(len(row) == len(header) for row in rows)
    return rows


def jsonl_lines(path):
    text = path.read_text()
    assert text.endswith("\n"), "the JSONL ends in a partial line"
    return [json.loads(line) for line in text.splitlines()]  # raises on a broken line


def _default_sigint():
    """A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT: give
    the child the default disposition, so it gets its KeyboardInterrupt as from a terminal's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_rows(proc, path, rows, timeout=None):
    """Poll the CSV until it has `rows` data rows (the batch is under way and writing as it goes)."""
    timeout = timeout or seconds(120)
    deadline, first = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        seen = path.read_text().count("\n") - 1 if path.is_file() else 0
        if seen > 0 and first is None:
            first = seen
            # Rows arrive one by one (flushed), not in an 8 KB buffer's worth (about 50 rows) at a time.
            assert first < 20, f"the first {first} CSV rows appeared at once: rows are not flushed as made"
        if seen >= rows:
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"predict ended (status {proc.returncode}) before {rows} CSV rows appeared: {err[-2000:]}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"no {rows} CSV rows within {timeout} s")


def test_ctrl_c_keeps_every_finished_row_and_resume_completes_the_set(tmp_path):
    n = 120
    make_folder(tmp_path / "images", n)
    outputs = ["--csv", "out/r.csv", "--jsonl", "out/r.jsonl", "--json", "out/r.json"]
    proc = subprocess.Popen(SLOW_CLI + ["images", *outputs], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    wait_for_rows(proc, tmp_path / "out" / "r.csv", 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=seconds(120))

    assert proc.returncode == 130, err
    assert "Traceback" not in err
    message = MESSAGE.search(err)
    assert message, err
    written, total = int(message[1]), int(message[2])
    assert total == n + 1 and 2 <= written < n  # stopped mid-batch, not at the end
    assert message[3] == "out/r.csv, out/r.jsonl, out/r.json" and message[4] == " (1 unreadable)"
    rows = csv_rows(tmp_path / "out" / "r.csv")
    lines = jsonl_lines(tmp_path / "out" / "r.jsonl")
    results = [line for line in lines if "error" not in line]
    assert len(rows) >= written and len(results) >= written
    assert len({row[0] for row in rows}) == len(rows) and len({r["path"] for r in results}) == len(results)
    assert [line["path"] for line in lines if "error" in line] == ["images/broken.jpg"]
    assert {row[0] for row in rows} >= {r["path"] for r in results[:written]}
    document = json.loads((tmp_path / "out" / "r.json").read_text())
    assert document["interrupted"] is True and len(document["results"]) >= written
    kept_csv = (tmp_path / "out" / "r.csv").read_text()

    done = run(["images", *outputs, "--resume"], tmp_path)
    assert done.returncode == 0, done.stderr
    resumed = re.search(r"resuming: (\d+) of (\d+) images already in", done.stderr)
    assert resumed and int(resumed[1]) >= written and int(resumed[2]) == n + 1, done.stderr
    assert (tmp_path / "out" / "r.csv").read_text().startswith(kept_csv)  # appended, not rewritten
    expected = sorted(f"images/img_{i:03d}.jpg" for i in range(n))
    assert sorted(row[0] for row in csv_rows(tmp_path / "out" / "r.csv")) == expected  # each exactly once
    lines = jsonl_lines(tmp_path / "out" / "r.jsonl")
    assert sorted(line["path"] for line in lines) == sorted(expected + ["images/broken.jpg"])
    document = json.loads((tmp_path / "out" / "r.json").read_text())
    assert document["interrupted"] is False
    assert [r["path"] for r in document["results"]] == expected  # in input order, as one run writes it
    assert [s["path"] for s in document["skipped"]] == ["images/broken.jpg"]

    again = run(["images", *outputs, "--resume"], tmp_path)  # nothing left: nothing redone, not an error
    assert again.returncode == 0 and "0 to do" in again.stderr, again.stderr
    assert len(csv_rows(tmp_path / "out" / "r.csv")) == n


def test_kill_9_loses_at_most_the_image_in_flight(tmp_path):
    n = 120
    make_folder(tmp_path / "images", n)
    outputs = ["--csv", "r.csv", "--jsonl", "r.jsonl"]
    proc = subprocess.Popen(SLOW_CLI + ["images", *outputs], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    wait_for_rows(proc, tmp_path / "r.csv", 3)
    proc.kill()  # SIGKILL: no handler runs, no file is closed
    proc.communicate(timeout=seconds(60))
    assert proc.returncode == -signal.SIGKILL
    rows = csv_rows(tmp_path / "r.csv")  # whole rows only (each is one write, then a flush)
    results = [line for line in jsonl_lines(tmp_path / "r.jsonl") if "error" not in line]
    assert 3 <= len(rows) < n
    assert len(results) >= len(rows) - 1  # the JSONL line follows the CSV row of the same image

    done = run(["images", *outputs, "--resume"], tmp_path)
    assert done.returncode == 0, done.stderr
    expected = sorted(f"images/img_{i:03d}.jpg" for i in range(n))
    assert sorted(row[0] for row in csv_rows(tmp_path / "r.csv")) == expected
    assert sorted(line["path"] for line in jsonl_lines(tmp_path / "r.jsonl")) == sorted(
        expected + ["images/broken.jpg"])


def test_resume_drops_a_torn_last_line_and_redoes_its_image(tmp_path):
    make_folder(tmp_path / "images", 6)
    outputs = ["--csv", "r.csv", "--jsonl", "r.jsonl"]
    first = run(["images", *outputs], tmp_path)
    assert first.returncode == 0, first.stderr
    # What a power cut mid-write leaves: the last line cut short (the CSV between its \r and \n).
    csv_file, jsonl_file = tmp_path / "r.csv", tmp_path / "r.jsonl"
    csv_file.write_bytes(csv_file.read_bytes()[:-1])
    jsonl_file.write_bytes(jsonl_file.read_bytes()[:-40])
    with pytest.raises(ValueError):
        json.loads(jsonl_file.read_text().splitlines()[-1])  # 7 lines, the last one broken

    resumed = run(["images", *outputs, "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("dropped an incomplete last line") == 2
    assert "1 to do" in resumed.stderr  # the torn image only: img_005 lost its line in both files
    expected = [f"images/img_{i:03d}.jpg" for i in range(6)]
    assert [row[0] for row in csv_rows(csv_file)] == expected
    assert [line["path"] for line in jsonl_lines(jsonl_file)] == ["images/broken.jpg", *expected]

    # A broken line that is not the last is damage, not a torn write: refused, the file left alone.
    text = jsonl_file.read_text().splitlines(keepends=True)
    text[2] = text[2][:30] + "\n"
    jsonl_file.write_text("".join(text))
    refused = run(["images", "--jsonl", "r.jsonl", "--resume"], tmp_path)
    assert refused.returncode == 2 and "r.jsonl, line 3" in refused.stderr, refused.stderr
    assert jsonl_file.read_text() == "".join(text)

    # Without --resume an existing output is replaced, as before.
    replaced = run(["images", "--csv", "r.csv"], tmp_path)
    assert replaced.returncode == 0 and len(csv_rows(csv_file)) == 6


def test_json_to_stdout_is_still_one_valid_document(tmp_path):
    make_folder(tmp_path / "images", 3)
    result = run(["images", "--json", "-"], tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # nothing else on stdout: no table, no progress
    assert [r["path"] for r in document["results"]] == [f"images/img_{i:03d}.jpg" for i in range(3)]
    assert [s["path"] for s in document["skipped"]] == ["images/broken.jpg"]
    assert document["interrupted"] is False and document["variant"]

    lines = run(["images", "--jsonl", "-"], tmp_path)
    assert lines.returncode == 0, lines.stderr
    assert [json.loads(line)["path"] for line in lines.stdout.splitlines()] == [
        "images/broken.jpg", *(f"images/img_{i:03d}.jpg" for i in range(3))]


def test_resume_needs_a_file_to_read_back(tmp_path):
    make_folder(tmp_path / "images", 1)
    result = run(["images", "--json", "-", "--resume"], tmp_path)
    assert result.returncode == 2 and "--resume continues" in result.stderr, result.stderr
