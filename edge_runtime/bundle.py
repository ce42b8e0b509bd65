"""The model bundle: a folder (or .zip) of model files plus `manifest.json`, the runtime's only
contract with export. Everything the runtime needs to know (labels, sizes, normalisation,
thresholds, which file is which variant) is in the manifest; nothing is inferred from names."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from edge_runtime.preprocess import COLOUR_CONSTANCY

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
# The bundle installed with the package (TFLite variants only), so `dermedge predict` works offline.
DEFAULT_BUNDLE = Path(__file__).parent / "default_bundle"
REQUIRED_KEYS = ("schema_version", "labels", "malignant_labels", "segmenter", "classifier",
                 "crop_margin", "thresholds", "variants")


class BundleError(Exception):
    """A bundle that cannot be used: the message names the file or manifest field at fault."""


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a directory (Core ML .mlpackage) as its sorted relative paths + bytes."""
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(file.relative_to(path).as_posix().encode())
            digest.update(file.read_bytes())
    else:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def file_record(root: Path, path: Path) -> dict:
    """The manifest entry for one model file: path relative to the bundle, bytes and sha256."""
    return {"path": path.relative_to(root).as_posix(), "bytes": size_of(path), "sha256": sha256_of(path)}


@dataclass
class Bundle:
    """A loaded manifest plus where its files live: a folder, or the members of a `.zip`."""

    root: Path
    manifest: dict
    archive: zipfile.ZipFile | None = field(default=None, repr=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.manifest["labels"])

    @property
    def variants(self) -> dict:
        return self.manifest["variants"]

    @property
    def default_variant(self) -> str:
        """The manifest's `default_variant` (export and pack always write one); else its first variant."""
        return self.manifest.get("default_variant") or next(iter(self.variants))

    def _record(self, variant: str, model: str) -> dict:
        if variant not in self.variants:
            raise BundleError(f"variant {variant!r} not in bundle; it has: {', '.join(self.variants)}")
        return self.variants[variant]["files"][model]

    def file(self, variant: str, model: str, verify: bool = True) -> Path:
        """Path of `model` ("segmenter"/"classifier") of `variant`, sha256-checked by default."""
        record = self._record(variant, model)
        path = self.root / record["path"]
        if not path.exists():
            raise BundleError(f"bundle file missing: {record['path']}")
        if verify and sha256_of(path) != record["sha256"]:
            raise BundleError(f"bundle file {record['path']} does not match its sha256 in the manifest")
        return path

    def read(self, variant: str, model: str) -> bytes:
        """The bytes of one model file (folder or zip bundle), always checked against its sha256."""
        record = self._record(variant, model)
        if self.archive is None:
            path = self.root / record["path"]
            if not path.is_file():
                raise BundleError(f"bundle file missing: {record['path']}")
            data = path.read_bytes()
        else:
            try:
                data = self.archive.read(record["path"])
            except KeyError:
                raise BundleError(f"bundle file missing from {self.root.name}: {record['path']}") from None
        if hashlib.sha256(data).hexdigest() != record["sha256"]:
            raise BundleError(f"bundle file {record['path']} does not match its sha256 in the manifest")
        return data


def _is_inside(name: str) -> bool:
    """A plain relative path: no root, no drive, no `..` (for zip members and manifest paths)."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return bool(parts) and not name.startswith(("/", "\\")) and ".." not in parts and ":" not in parts[0]


def _open_zip(path: Path) -> zipfile.ZipFile:
    """A bundle archive whose member names are all plain relative paths (no `/x`, no `..`)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"{path} is not a readable zip bundle: {exc}") from None
    for name in archive.namelist():
        if not _is_inside(name):
            archive.close()
            raise BundleError(f"{path.name}: refusing unsafe member path {name!r}")
    return archive


def load_bundle(root: Path | str | None = None) -> Bundle:
    """A bundle folder or `.zip` (default: the one installed with dermedge), manifest checked."""
    root = Path(root) if root is not None else DEFAULT_BUNDLE
    archive = None
    if root.is_file() and zipfile.is_zipfile(root):
        archive = _open_zip(root)
        manifest_path = root / MANIFEST
        try:
            text = archive.read(MANIFEST).decode()
        except KeyError:
            raise BundleError(f"no {MANIFEST} in {root}: not a dermedge bundle") from None
    else:
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            hint = " (the default bundle is not installed)" if root == DEFAULT_BUNDLE else ""
            raise BundleError(f"no {MANIFEST} in {root}: not a dermedge bundle{hint}")
        text = manifest_path.read_text()
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path}: the manifest must be a JSON object")
    validate_manifest(manifest, str(manifest_path))
    return Bundle(root, manifest, archive)


def validate_manifest(manifest: dict, where: str = MANIFEST) -> None:
    """Check the manifest against schema 1, naming the field at fault.

    Hand-written rather than `jsonschema`: that library pulls a compiled dependency onto the device
    for forty lines of checks. Fields a newer export adds are allowed; missing or mistyped ones
    the runtime reads are not.
    """

    def fail(field: str, problem: str):
        raise BundleError(f"{where}: {field} {problem}")

    def number(field: str, value, low: float, high: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            fail(field, f"must be a number in [{low}, {high}], got {value!r}")

    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        fail("missing field(s)", ", ".join(missing))
    if manifest["schema_version"] != SCHEMA_VERSION:
        fail("schema_version", f"{manifest['schema_version']!r} is not supported (this dermedge reads {SCHEMA_VERSION})")
    labels = manifest["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        fail("labels", "must be a non-empty list of names")
    if len(set(labels)) != len(labels):
        fail("labels", "has duplicates")
    malignant = manifest["malignant_labels"]
    if not isinstance(malignant, list) or not set(malignant) <= set(labels):
        fail("malignant_labels", f"must be a list of names from labels, got {malignant!r}")
    for model in ("segmenter", "classifier"):
        size = manifest[model].get("input_size") if isinstance(manifest[model], dict) else None
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(d, int) and d > 0 for d in size)):
            fail(f"{model}.input_size", f"must be [height, width] in pixels, got {size!r}")
    number("crop_margin", manifest["crop_margin"], 0.0, 1.0)
    colour = manifest["classifier"].get("colour_constancy", "none")
    if colour not in COLOUR_CONSTANCY:  # a method this runtime cannot apply must not be skipped silently
        fail("classifier.colour_constancy", f"must be one of {', '.join(COLOUR_CONSTANCY)}, got {colour!r}")
    thresholds = manifest["thresholds"]
    if not isinstance(thresholds, dict):
        fail("thresholds", "must be an object with mask and malignant")
    for key in ("mask", "malignant"):
        number(f"thresholds.{key}", thresholds.get(key), 0.0, 1.0)
    variants = manifest["variants"]
    if not isinstance(variants, dict) or not variants:
        fail("variants", "must be a non-empty object of variant name -> files")
    for name, variant in variants.items():
        if not isinstance(variant, dict) or not isinstance(variant.get("format"), str):
            fail(f"variants.{name}.format", "is missing")
        for model in ("segmenter", "classifier"):
            record = (variant.get("files") or {}).get(model)
            field = f"variants.{name}.files.{model}"
            if not isinstance(record, dict) or not {"path", "bytes", "sha256"} <= set(record):
                fail(field, "needs path, bytes, sha256")
            if not isinstance(record["path"], str) or not _is_inside(record["path"]):
                fail(f"{field}.path", f"{record['path']!r} leaves the bundle")
            if isinstance(record["bytes"], bool) or not isinstance(record["bytes"], int) or record["bytes"] < 0:
                fail(f"{field}.bytes", f"must be a byte count, got {record['bytes']!r}")
            digest = record["sha256"]
            if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
                fail(f"{field}.sha256", "must be 64 lowercase hex digits")
    default = manifest.get("default_variant")
    if default is not None and default not in variants:
        fail("default_variant", f"{default!r} is not one of the variants ({', '.join(variants)})")


def empty_bundle_folder(out: Path) -> Path:
    """A fresh folder to write a bundle into; an existing bundle is replaced, anything else refused."""
    import shutil

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise BundleError(f"{out} is not empty and not a bundle: choose a new --out folder")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


def write_manifest(root: Path, manifest: dict) -> Path:
    path = Path(root) / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path
