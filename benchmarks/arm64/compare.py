"""Compare the emulated arm64 run with x86: tests, labels, boxes, probabilities, masks.

Reads the work folder `run.sh` fills (x86/ and arm64-<cpu>/ with `predict --json` documents and
`dump_outputs.py` arrays per variant, the runtime tests' JUnit XML, the guest's versions) and writes
arm64.json, arm64.md and README_SECTION.md (the README's section on arm64, from the same figures).
Standard library and numpy only.

    python compare.py --work /var/cache/dermedge-arm64/work --out benchmarks/results/arm64
"""

from __future__ import annotations

import argparse
import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

EXAMPLE = "<synthetic example>"


def tests_summary(work: Path) -> dict:
    suite = ET.parse(work / "runtime-tests.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, failures, errors, skipped = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    failed, reasons = [], {}
    for case in suite.iter("testcase"):
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            name = f"{case.get('classname')}::{case.get('name')}"
            failed.append(name)
            reasons[name] = short((problem.get("message") or problem.text or "").strip().splitlines() or [""])
    log = (work / "runtime-tests.log").read_text(errors="replace").strip().splitlines()
    last = log[-1] if log else ""
    deselected = re.search(r"(\d+) deselected", last)
    return {"command": "python -m pytest -m runtime", "passed": total - failures - errors - skipped,
            "failed": failures + errors, "skipped": skipped,
            "deselected": int(deselected.group(1)) if deselected else None,
            "failed_tests": failed, "failure_reasons": reasons, "summary_line": last.strip("= ")}


def short(lines: list[str], width: int = 150) -> str:
    """A failure's first line, its middle cut out if long (a timed-out command's arguments)."""
    text = lines[0]
    return text if len(text) <= width else text[: width // 2 - 2] + " ... " + text[-(width // 2 - 3):]


def predictions(folder: Path, variant: str) -> dict[str, dict]:
    records = json.loads((folder / f"{variant}.json").read_text())["results"]
    records += json.loads((folder / f"{variant}.example.json").read_text())["results"]
    return {Path(r["path"]).name if r["path"] != EXAMPLE else EXAMPLE: r for r in records}


def arrays(folder: Path, variant: str) -> dict[str, dict[str, np.ndarray]]:
    data = np.load(folder / f"{variant}.npz")
    out = {}
    for i, name in enumerate(data["names"]):
        shape = tuple(data[f"mask_shape_{i}"])
        mask = np.unpackbits(data[f"mask_{i}"], count=int(np.prod(shape))).reshape(shape).astype(bool)
        out[str(name)] = {"mask": mask, "segment": data[f"segment_{i}"], "probs": data[f"probs_{i}"]}
    return out


def compare_variant(x86: Path, arm: Path, variant: str) -> dict:
    px, pa = predictions(x86, variant), predictions(arm, variant)
    ax, aa = arrays(x86, variant), arrays(arm, variant)
    names = sorted(px)
    if sorted(pa) != names or sorted(ax) != names or sorted(aa) != names:
        raise SystemExit(f"{variant}: the two sides ran on different images")
    same = lambda key: sum(px[n][key] == pa[n][key] for n in names)  # noqa: E731
    iou, agree, identical = [], [], 0
    for n in names:
        mx, ma = ax[n]["mask"], aa[n]["mask"]
        union = np.logical_or(mx, ma).sum()
        iou.append(float(np.logical_and(mx, ma).sum() / union) if union else 1.0)
        agree.append(float((mx == ma).mean()))
        identical += bool(np.array_equal(mx, ma))
    prob_diff = max(float(np.abs(ax[n]["probs"] - aa[n]["probs"]).max()) for n in names)
    seg_diff = max(float(np.abs(ax[n]["segment"] - aa[n]["segment"]).max()) for n in names)
    flips = [{"image": n, "x86": px[n]["label"], "arm64": pa[n]["label"]}
             for n in names if px[n]["label"] != pa[n]["label"]]
    return {
        "images": len(names),
        "labels_equal": same("label"), "boxes_equal": same("box"),
        "lesion_found_equal": same("lesion_found"), "malignant_equal": same("malignant"),
        "inconclusive_equal": same("inconclusive_reason"),
        "max_prob_diff": prob_diff,
        "max_malignant_prob_diff": max(abs(px[n]["malignant_probability"] - pa[n]["malignant_probability"])
                                       for n in names),
        "max_segmenter_prob_diff": seg_diff,
        "masks_identical": identical, "min_mask_iou": min(iou), "min_mask_pixel_agreement": min(agree),
        "label_flips": flips,
        # Emulated: a measure of qemu on this host, not of any arm64 device.
        "emulated_ms_per_image": round(float(np.mean([pa[n]["latency_ms"]["total"] for n in names])), 1),
        "x86_ms_per_image": round(float(np.mean([px[n]["latency_ms"]["total"] for n in names])), 1),
    }


def markdown(report: dict) -> str:
    g, t, r = report["arm64"], report["runtime_tests"], report["run"]
    lines = [
        "# dermedge on arm64, under emulation, against x86",
        "",
        f"`benchmarks/arm64/run.sh`, {report['date']}. Guest: Debian {g['os']} {g['machine']} (debootstrap, "
        f"qemu-user-static; CPU models {', '.join(r['cpus'])}), Python {g['python']}, "
        + ", ".join(f"{k} {v}" for k, v in g["packages"].items())
        + f". Host: {r['host']['machine']}, Python {r['host']['python']}. Bundle: the shipped default bundle, "
        f"variants {', '.join(r['variants'])}, 1 thread. Images: {r['image_source']}, plus `predict --example`.",
        "",
        f"- **Base install** (`pip install <checkout>`, no extras): {g['venv_mb']} MB venv, "
        f"TensorFlow {'installed' if g['tensorflow_installed'] else 'not installed'}.",
        f"- **Runtime tests** (`{t['command']}`, on {r['cpus'][0]}): **{t['passed']} passed, {t['failed']} failed, "
        f"{t['skipped']} skipped**" + (f" ({t['deselected']} deselected)" if t["deselected"] is not None else "")
        + (f"; failed: {', '.join(t['failed_tests'])}" if t["failed_tests"] else "") + ".",
        *[f"  - `{name}`: {t['failure_reasons'].get(name, '')}" for name in t["failed_tests"]],
        *(["  - A \"timed out\" is a test's wall-clock limit on a subprocess: under qemu on a loaded host the CLI "
           "runs one to two orders of magnitude slower than natively, so such a limit says nothing about arm64."]
          if any("timed out" in why for why in t["failure_reasons"].values()) else []),
        f"- `dermedge info`, `dermedge predict` and `dermedge predict --example` run on arm64.",
        "",
        "| CPU model | variant | images | labels equal | boxes equal | masks identical | min mask IoU "
        "| max Δp (classes) | max Δp (segmenter map) | malignant flag equal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cpu, variants in report["comparison"].items():
        for v, c in variants.items():
            n = c["images"]
            lines.append(f"| {cpu} | {v} | {n} | {c['labels_equal']}/{n} | {c['boxes_equal']}/{n} | "
                         f"{c['masks_identical']}/{n} | {c['min_mask_iou']:.4f} | {c['max_prob_diff']:.2g} | "
                         f"{c['max_segmenter_prob_diff']:.2g} | {c['malignant_equal']}/{n} |")
    lines += [
        "",
        "Δp: the largest absolute difference of any probability on any image, arm64 minus x86, at full "
        "precision (`dump_outputs.py`); boxes and labels from `predict --json`.",
        "",
        "**Not measured: speed.** Emulated timings ("
        + ", ".join(f"{cpu} {next(iter(v.values()))['emulated_ms_per_image'] / 1000:.1f} s per image"
                    for cpu, v in report["comparison"].items())
        + ") measure qemu on this host, not a Raspberry Pi; the README's Pi figures are estimates from MAC "
        "counts.",
        "",
        f"Run: {r['wall_s'] / 60:.1f} min wall (debootstrap {r['debootstrap_s'] / 60:.1f} min when the cached root "
        f"was built; venv and install {r['install_s'] / 60:.1f} min; tests {r['tests_s'] / 60:.1f} min; "
        "predictions " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in r["predict_s"].items()) + ").",
        "",
    ]
    return "\n".join(lines)


def readme_section(report: dict) -> str:
    """The README's section: what the run proves on arm64 and what it does not, with its figures."""
    g, t, r, c = report["arm64"], report["runtime_tests"], report["run"], report["comparison"]
    n_tests = t["passed"] + t["failed"]
    if t["failed"]:
        tests = (f"{t['passed']} of {n_tests} pass, {t['skipped']} skipped; {t['failed']} fail: "
                 + "; ".join(f"`{n.split('::')[-1]}` ({t['failure_reasons'].get(n, '')})" for n in t["failed_tests"])
                 + " (see arm64.md)")
    else:
        tests = f"all {n_tests} pass, {t['skipped']} skipped"
    rows = []
    for cpu, variants in c.items():
        for v, x in variants.items():
            n = x["images"]
            rows.append(f"| {cpu} | {v} | {x['labels_equal']}/{n} | {x['boxes_equal']}/{n} | "
                        f"{x['masks_identical']}/{n} (min IoU {x['min_mask_iou']:.4f}) | {x['max_prob_diff']:.2g} | "
                        f"{x['max_segmenter_prob_diff']:.2g} |")
    return "\n".join([
        "## arm64 (Raspberry Pi) under emulation",
        "",
        f"`benchmarks/arm64/run.sh` builds a Debian {g['os']} arm64 root (debootstrap) and runs it with "
        f"qemu-user-static on this x86 machine, emulating the Cortex-A72 (Pi 4) and Cortex-A76 (Pi 5); "
        f"measured {report['date']} ([arm64.md](benchmarks/results/arm64/arm64.md)). What it proves, on arm64:",
        "",
        f"- **The base install resolves**: `pip install .` (no extras) gives a {g['venv_mb']} MB venv "
        f"(Python {g['python']}, " + ", ".join(f"{k} {v}" for k, v in g["packages"].items() if k != "dermedge")
        + f"), TensorFlow {'installed' if g['tensorflow_installed'] else 'not installed'}.",
        f"- **The runtime's tests** (`python -m pytest -m runtime`, on {r['cpus'][0]}): {tests}.",
        f"- **Outputs match x86** (`dermedge predict`, {next(iter(next(iter(c.values())).values()))['images']} images: "
        f"{r['image_source']} plus `--example`; Δp is the largest probability difference, arm64 minus x86):",
        "",
        "| CPU model | variant | labels equal | boxes equal | masks identical | max Δp (classes) | max Δp (segmenter) |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "What it does not prove: speed. Emulated timings measure qemu on this host and say nothing about a "
        "Raspberry Pi; the Pi figures elsewhere in this README are estimates from MAC counts, not measurements. "
        f"This run took {r['wall_s'] / 60:.0f} min. Rerun (root; the arm64 root is cached in /var/cache/dermedge-arm64): "
        "`sudo nice -n 19 benchmarks/arm64/run.sh`.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    work = args.work
    run = json.loads((work / "run.json").read_text())
    guest = json.loads((work / "guest.json").read_text())
    guest["venv_mb"] = run["venv_mb"]
    comparison = {cpu: {v: compare_variant(work / "x86", work / f"arm64-{cpu}", v) for v in run["variants"]}
                  for cpu in run["cpus"]}
    report = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "arm64": guest,
              "runtime_tests": tests_summary(work), "comparison": comparison, "run": run}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "arm64.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "arm64.md").write_text(markdown(report))
    (args.out / "README_SECTION.md").write_text(readme_section(report))
    print((args.out / "arm64.md").read_text())


if __name__ == "__main__":
    main()
