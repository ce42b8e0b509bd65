"""What a `.tflite` file holds, read from its graph: parameters, weight sparsity, multiply-accumulates.

Read with the LiteRT interpreter itself (no TensorFlow, no flatbuffer parser), so the benchmark can
describe any bundle on the device it runs on. MACs count the dense arithmetic of the convolution and
fully connected layers, the ones that dominate; pruning zeroes weights but XNNPACK still runs them
dense, so a pruned model has the same MACs as the unpruned one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_runtime.interpreter import load_interpreter_class

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


@dataclass(frozen=True)
class ModelStats:
    parameters: int  # values of every constant tensor (weights, biases, folded BatchNorm)
    weight_sparsity: float  # zero fraction of the convolution / dense kernels
    macs: int  # multiply-accumulates of one inference

    def as_dict(self) -> dict:
        return {"parameters": self.parameters, "weight_sparsity": round(self.weight_sparsity, 4),
                "macs": self.macs}


def _interpreter(content: bytes):
    """An interpreter without the XNNPACK delegate, which takes constant tensors out of reach."""
    interpreter_class, backend = load_interpreter_class()
    module = __import__(interpreter_class.__module__, fromlist=["OpResolverType"])
    resolver = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = interpreter_class(model_content=content, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return interpreter


def model_stats(content: bytes) -> ModelStats:
    interpreter = _interpreter(content)
    ops = interpreter._get_ops_details()  # public in all LiteRT releases we know, underscore or not
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    produced = {int(i) for op in ops for i in op["outputs"]}
    model_inputs = {d["index"] for d in interpreter.get_input_details()}
    dequantized_from = {int(op["outputs"][0]): int(op["inputs"][0]) for op in ops if op["op_name"] == "DEQUANTIZE"}

    def constant(index: int) -> np.ndarray | None:
        """Value of a constant input, looking through the DEQUANTIZE of fp16/dynamic weights."""
        index = dequantized_from.get(index, index)
        if index < 0 or index in produced or index in model_inputs:
            return None
        return interpreter.get_tensor(index)

    constants = {int(i) for op in ops for i in op["inputs"] if int(i) >= 0} - produced - model_inputs
    parameters = sum(int(np.prod(tensors[i]["shape"])) for i in constants)
    macs, zeros, kernel_values = 0, 0, 0
    for op in ops:
        name = op["op_name"]
        if name not in WEIGHT_OPS:
            continue
        # Kernel is input 1 for all four; TRANSPOSE_CONV takes (output_shape, kernel, data).
        kernel_index = int(op["inputs"][1])
        data_index = int(op["inputs"][2 if name == "TRANSPOSE_CONV" else 0])
        kernel = constant(kernel_index)
        kernel_shape = tuple(tensors[dequantized_from.get(kernel_index, kernel_index)]["shape"])
        output_shape = tuple(tensors[int(op["outputs"][0])]["shape"])
        macs += _macs(name, kernel_shape, output_shape, tuple(tensors[data_index]["shape"]))
        if kernel is not None:
            zeros += int(np.count_nonzero(kernel == 0))
            kernel_values += kernel.size
    return ModelStats(parameters, zeros / kernel_values if kernel_values else 0.0, macs)


def _macs(op: str, kernel: tuple, output: tuple, data_input: tuple) -> int:
    """Multiply-accumulates of one op from its kernel and tensor shapes (TFLite layouts)."""
    if op == "CONV_2D":  # kernel (out_c, kh, kw, in_c), output (1, h, w, out_c)
        return int(np.prod(output[1:3])) * int(np.prod(kernel))
    if op == "DEPTHWISE_CONV_2D":  # kernel (1, kh, kw, out_c)
        return int(np.prod(output[1:3])) * int(np.prod(kernel))
    if op == "FULLY_CONNECTED":  # kernel (out, in)
        return int(np.prod(output[:-1])) * int(np.prod(kernel))
    if op == "TRANSPOSE_CONV":  # every input pixel scatters a kh x kw x out_c patch per in_c
        return int(np.prod(data_input[1:3])) * int(np.prod(kernel))
    return 0
