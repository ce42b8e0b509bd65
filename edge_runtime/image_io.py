"""Reading an image file into RGB uint8, whatever a user or a camera roll hands us.

OpenCV's `IMREAD_COLOR` already applies the EXIF orientation and turns grayscale and RGBA into
three channels; `IMREAD_ANYDEPTH` keeps 16-bit data so it can be scaled instead of clipped.
Huge images are refused from their header, before decoding allocates anything.
"""

from __future__ import annotations

import struct
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

MAX_PIXELS = 50_000_000  # 50 MP: every dermatoscope and phone camera fits; decompression bombs don't
MAX_FILE_BYTES = 200 * 1024 * 1024
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Files that a known data set layout marks as masks, not photos. Matched case-insensitively against
# the file's folder and name (`PurePath.match`, from the right).
MASK_PATTERNS = (
    "*_segmentation.*",  # HAM10000 / ISIC: <image_id>_segmentation.png (ISIC 2016: _Segmentation.png)
    "*_lesion.bmp",  # PH2: IMDxxx/IMDxxx_lesion/IMDxxx_lesion.bmp
    "*_roi/*.bmp",  # PH2: IMDxxx/IMDxxx_roi/IMDxxx_R1_Label4.bmp (regions of colour labels)
    "*_roi*.bmp",  # PH2 ROI masks copied out of their folder
)


class ImageError(Exception):
    """One file that cannot be used as an image; the message says why, in one line."""


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, BMP or GIF header, or None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk JPEG segments to the first start-of-frame marker, which holds the size."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    return None


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded bytes -> RGB uint8 (H, W, 3). Raises ImageError with the reason."""
    if not data:
        raise ImageError("empty file")
    size = header_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(f"image is {size[0]}x{size[1]}, over the {max_pixels:,}-pixel limit")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error:  # OpenCV asserts on some corrupt headers (found by tests/test_fuzz_images.py)
        raise ImageError("not a readable image (OpenCV refused its header)") from None
    if image is None or image.size == 0:
        raise ImageError("not a readable image (unknown format or corrupt data)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageError(f"image is {image.shape[1]}x{image.shape[0]}, over the {max_pixels:,}-pixel limit")
    return to_rgb8(image, bgr=True)


def to_rgb8(image: np.ndarray, bgr: bool = False) -> np.ndarray:
    """Any 2-D/3-D image array (gray, RGB, RGBA; uint8, uint16 or float 0..1) -> RGB uint8."""
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        scale = 255.0 if np.issubdtype(image.dtype, np.floating) and image.max(initial=0) <= 1.0 else 1.0
        image = np.clip(image.astype(np.float32) * scale + 0.5, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ImageError(f"unsupported image shape {image.shape}")
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(image)


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file -> RGB uint8. Raises ImageError naming the problem (never a traceback)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImageError(f"file is over {MAX_FILE_BYTES // 2**20} MB")
        data = path.read_bytes()
    except IsADirectoryError:
        raise ImageError("is a folder, not an image") from None
    except OSError as exc:
        raise ImageError(exc.strerror or type(exc).__name__) from None
    return decode_image(data, max_pixels)


def is_mask_file(path: str | Path) -> bool:
    """Whether a data set layout marks this file as a lesion mask (`MASK_PATTERNS`), not a photo."""
    tail = PurePosixPath(*Path(path).parts[-2:]).as_posix().lower()
    return any(PurePosixPath(tail).match(pattern) for pattern in MASK_PATTERNS)


def find_images(paths: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand files, folders (recursively) and glob patterns into image files, in a stable order.

    Folders and globs leave out the masks a data set layout keeps beside its photos (`is_mask_file`:
    HAM10000/ISIC `*_segmentation.png`, PH2's `*_lesion.bmp` and ROI files), so `predict` on a data
    set's root classifies photos only; a file named explicitly is always taken.

    Returns (images, problems): a path that matches nothing is a (path, reason) problem, not an
    exception, so one bad argument does not stop a batch.
    """
    import glob

    found: list[Path] = []
    problems: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                            and not is_mask_file(p))
        elif path.is_file():
            found.append(path)
        elif any(ch in str(raw) for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(raw), recursive=True) if Path(p).is_file())
            photos = [p for p in matches if not is_mask_file(p)]
            if not matches:
                problems.append((str(raw), "no file matches"))
            elif not photos:
                problems.append((str(raw), "matches only lesion masks (e.g. *_segmentation.png), not photos"))
            found += photos
        else:
            problems.append((str(raw), "no such file or folder"))
    unique = list(dict.fromkeys(found))
    return unique, problems
