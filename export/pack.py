"""`dermedge pack`: a bundle holding only the variants a device needs.

A full export carries Core ML packages and every TFLite variant; a Raspberry Pi needs one or two
`.tflite` pairs. Packing copies those files and their manifest entries (metrics included), so a
packed bundle says exactly what the full export measured. The one change: each `.tflite` gets the
standard TFLite metadata (labels, normalisation) rewritten, so a bundle packed from an export made
before MediaPipe Tasks could read it can; the model graph and weights stay byte for byte, and the
manifest's bytes and sha256 follow the file.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from dermedge.errors import DermedgeError
from dermedge.export.formats import parse_variant_list, pick_default_variant
from edge_runtime.bundle import empty_bundle_folder, load_bundle, write_manifest


def pack_bundle(source: Path, out: Path, variants: str, default_variant: str | None = None) -> dict:
    bundle = load_bundle(source)
    if bundle.archive is not None:
        raise DermedgeError(f"{source} is a zip: pack from the bundle folder")
    wanted = parse_variant_list(variants) or []
    if not wanted:
        raise DermedgeError("--variants names nothing to pack")
    if default_variant and default_variant not in wanted:
        raise DermedgeError(f"--default-variant {default_variant} is not among the packed variants")
    missing = [n for n in wanted if n not in bundle.variants]
    if missing:
        raise DermedgeError(f"variant(s) {', '.join(missing)} not in {source}; it has {', '.join(bundle.variants)}")
    out = Path(out)
    if out.resolve() == Path(source).resolve():
        raise DermedgeError("--out must differ from --bundle")
    empty_bundle_folder(out)
    manifest = dict(bundle.manifest)
    manifest["variants"] = {name: bundle.variants[name] for name in bundle.variants if name in wanted}
    for name, variant in manifest["variants"].items():
        for model, record in variant["files"].items():
            target = out / record["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.suffix == ".tflite":  # read once, sha256-checked: never pack a damaged file
                variant["files"][model] = _with_standard_metadata(out, target, bundle.read(name, model))
            else:
                source_path = bundle.file(name, model)  # sha256-checked the same way
                (shutil.copytree if source_path.is_dir() else shutil.copy2)(source_path, target)
    manifest["default_variant"] = pick_default_variant(manifest["variants"],
                                                       default_variant or manifest.get("default_variant"))
    origin = bundle.manifest.get("packed_from", {}).get("of", list(bundle.variants))  # repacking keeps the export's list
    manifest["packed_from"] = {"variants": list(manifest["variants"]), "of": origin}
    write_manifest(out, manifest)
    return manifest


def _with_standard_metadata(root: Path, target: Path, content: bytes) -> dict:
    """Write `content` to `target` with its standard metadata rewritten; its new manifest record."""
    from dermedge.export.tflite import add_metadata, read_metadata
    from dermedge.export.tflite_metadata import tflite_file_record

    entries = read_metadata(content)
    if entries is None:
        raise DermedgeError(f"{target.name} has no dermedge metadata: pack bundles written by `dermedge export`")
    target.write_bytes(add_metadata(content, entries))
    return tflite_file_record(root, target)


def zip_bundle(out: Path) -> Path:
    """`<out>.zip` beside the bundle folder, member paths relative to it (what `Pipeline.load` takes)."""
    out = Path(out)
    archive = out.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(out.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(out).as_posix())
    return archive
