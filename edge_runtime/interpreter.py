"""One TFLite model behind a float-in/float-out call, on whichever interpreter the device has.

Backends, in order: `ai_edge_litert` (LiteRT, maintained), `tflite_runtime` (deprecated, still on
older devices), `tensorflow.lite` (when TensorFlow is all there is). XNNPACK stays on (the default).
The interpreter and its buffers are created once; `run` only copies a batch in and out.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

BACKENDS = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")


def load_interpreter_class(preferred: str | None = None):
    """Return (Interpreter class, backend name) for the first backend that imports."""
    order = [preferred] if preferred else list(BACKENDS)
    errors = []
    for name in order:
        try:
            module = importlib.import_module(name)
            return module.Interpreter, name.split(".")[0]
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    raise ImportError("no TFLite interpreter found; pip install ai-edge-litert (" + "; ".join(errors) + ")")


class TFLiteModel:
    """A single-input, single-output TFLite model taking 0..255 RGB pixels.

    Quantized inputs/outputs are handled here, once: callers always pass float pixels (or uint8)
    and get float outputs, whatever the variant.
    """

    def __init__(self, path: str | Path | None = None, *, content: bytes | None = None,
                 num_threads: int | None = None, backend: str | None = None):
        interpreter_class, self.backend = load_interpreter_class(backend)
        if content is None:
            content = Path(path).read_bytes()
        self.interpreter = interpreter_class(model_content=content, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        (self._input,) = self.interpreter.get_input_details()
        (self._output,) = self.interpreter.get_output_details()
        self.input_shape = tuple(int(d) for d in self._input["shape"])
        self.input_dtype = np.dtype(self._input["dtype"])
        self.output_shape = tuple(int(d) for d in self._output["shape"])

    @property
    def output_size(self) -> int:
        """Number of values per image in the output (classes for a classifier)."""
        return int(np.prod(self.output_shape[1:]))

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) the model expects."""
        return self.input_shape[1], self.input_shape[2]

    def _to_input(self, pixels: np.ndarray) -> np.ndarray:
        if self.input_dtype == np.float32:
            return pixels.astype(np.float32, copy=False)
        scale, zero_point = self._input["quantization"]
        if self.input_dtype == np.uint8 and scale == 1.0 and zero_point == 0 and pixels.dtype == np.uint8:
            return pixels  # camera bytes go straight in
        info = np.iinfo(self.input_dtype)
        q = np.round(pixels.astype(np.float32) / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(self.input_dtype)

    def _from_output(self, raw: np.ndarray) -> np.ndarray:
        if raw.dtype == np.float32:
            return raw.copy()
        scale, zero_point = self._output["quantization"]
        return (raw.astype(np.float32) - zero_point) * scale

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """One image (H, W, 3) or a batch (N, H, W, 3) of 0..255 pixels -> float outputs."""
        single = pixels.ndim == 3
        batch = pixels[None] if single else pixels
        outputs = []
        for image in batch:
            self.interpreter.set_tensor(self._input["index"], self._to_input(image[None]))
            self.interpreter.invoke()
            outputs.append(self._from_output(self.interpreter.get_tensor(self._output["index"]))[0])
        result = np.stack(outputs)
        return result[0] if single else result
