"""Run a TensorRT plan with torch CUDA tensors in and out, by tensor name.

Written against the TensorRT 10/11 Python API (``Runtime.deserialize_cuda_engine``,
``ICudaEngine.num_io_tensors/get_tensor_name/get_tensor_mode/get_tensor_dtype/get_tensor_profile_shape``,
``IExecutionContext.set_input_shape/get_tensor_shape/set_tensor_address/execute_async_v3``), the names used
by Polygraphy's ``TrtRunner`` and NVIDIA's samples. Work is enqueued on torch's current stream of the
engine's device, so it is ordered with the torch code around it and nothing synchronises.
"""
from __future__ import annotations

import importlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Mapping

import torch

from . import compat

__all__ = ["TrtStage", "load_stages", "torch_dtype"]

_TORCH_DTYPES = {
    "FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT64": torch.int64,
    "INT32": torch.int32, "INT8": torch.int8, "UINT8": torch.uint8, "BOOL": torch.bool,
}
_MAX_GRAPHS = 4  # captured shape sets kept; each holds its own input and output buffers


def torch_dtype(trt_dtype) -> torch.dtype:
    """``trt.DataType.HALF`` -> ``torch.float16`` (by member name, so no TensorRT import is needed)."""
    name = getattr(trt_dtype, "name", str(trt_dtype)).rsplit(".", 1)[-1]
    if name not in _TORCH_DTYPES:
        raise TypeError(f"TensorRT dtype {name} has no torch counterpart here")
    return _TORCH_DTYPES[name]


def _set_input_shapes(context, engine, shapes: Mapping[str, tuple]) -> None:
    for name, shape in shapes.items():
        if not context.set_input_shape(name, shape):
            lo, _, hi = (tuple(s) for s in engine.get_tensor_profile_shape(name, 0))
            raise ValueError(f"input {name!r} of shape {tuple(shape)} is outside the engine's profile "
                             f"(min {lo}, max {hi}); rebuild the engines with a larger max_timesteps")


def _empty_outputs(context, dtypes: Mapping[str, torch.dtype], device) -> dict:
    outputs = {}
    for name, dtype in dtypes.items():
        shape = tuple(context.get_tensor_shape(name))
        if any(d < 0 for d in shape):  # data-dependent shapes would need an IOutputAllocator
            raise RuntimeError(f"output {name!r} has shape {shape} after setting the input shapes; "
                               "gimm_trt engines have no data-dependent output shapes")
        outputs[name] = torch.empty(shape, dtype=dtype, device=device)
    return outputs


def _bind(context, tensors: Mapping[str, torch.Tensor]) -> None:
    for name, tensor in tensors.items():
        if not context.set_tensor_address(name, tensor.data_ptr()):
            raise RuntimeError(f"TensorRT refused the address of tensor {name!r}")


def _import_plugin(module: str):
    """Import the splat plugin so engines with its JIT implementation deserialize; AOT engines carry their
    kernel and need no Python, so a failure only matters if deserialization then fails."""
    try:
        importlib.import_module(module)
    except ImportError as err:
        return err
    return None


class TrtStage:
    """One deserialized plan with one execution context: ``stage({name: tensor}) -> {name: tensor}``.

    Inputs are CUDA tensors on ``device`` of the engine's dtypes (``stage.dtypes``); outputs are allocated
    with torch on the same device, shaped by the context once the input shapes are set.

    With ``cuda_graph=True`` the second call with a set of input shapes captures the enqueue in a CUDA graph
    and later calls with those shapes replay it (inputs are copied into the graph's buffers). The outputs
    of a graphed call are the graph's own buffers: the next call with the same shapes overwrites them, so
    clone what you keep.
    """

    def __init__(self, plan, *, device=None, cuda_graph: bool = False, plugin_module: str = compat.PLUGIN_MODULE):
        """
        Args:
            plan (Union[path, bytes-like]): a plan file written by ``build_engines`` or its bytes.
            device: CUDA device the plan runs on (default: the current one).
            cuda_graph (bool): capture and replay CUDA graphs for repeated input shapes.
            plugin_module (str): imported first if importable (JIT splat plugins need it registered).
        """
        trt = compat.import_trt()
        self.device = compat.cuda_device(device)
        data = Path(plan).read_bytes() if isinstance(plan, (str, os.PathLike)) else plan
        plugin_error = _import_plugin(plugin_module)
        logger = compat.trt_logger()
        with torch.cuda.device(self.device):
            trt.init_libnvinfer_plugins(logger, "")
            self._runtime = trt.Runtime(logger)  # must outlive the engine
            self.engine = self._runtime.deserialize_cuda_engine(data)
            if self.engine is None:
                hint = f"; the splat plugin could not be imported: {plugin_error}" if plugin_error else ""
                raise RuntimeError(f"TensorRT could not deserialize the plan (built by another TensorRT version "
                                   f"or GPU, or truncated?){hint}; see TensorRT's log above")
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise RuntimeError("TensorRT could not create an execution context (out of GPU memory?)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = tuple(n for n in names if is_input[n])
        self.output_names = tuple(n for n in names if not is_input[n])
        self.dtypes = {n: torch_dtype(self.engine.get_tensor_dtype(n)) for n in names}
        self.cuda_graph = cuda_graph
        self._shapes = None  # the input shapes the context holds now
        self._seen = set()
        self._graphs = OrderedDict()  # input shapes -> (graph, inputs, outputs)
        self._uncapturable = set()

    def profile(self, name: str) -> tuple:
        """(min, opt, max) shapes of an input in the engine's optimisation profile."""
        return tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0))

    def __call__(self, feed: Mapping[str, torch.Tensor]) -> dict:
        feed = self._checked(feed)
        shapes = tuple(tuple(feed[n].shape) for n in self.input_names)
        with torch.cuda.device(self.device):
            if self.cuda_graph and shapes not in self._uncapturable:
                return self._graphed(shapes, feed)
            return self._run(shapes, feed)

    def reset_graphs(self) -> None:
        """Drop captured graphs and their buffers."""
        self._graphs.clear()
        self._seen.clear()
        self._uncapturable.clear()

    def _checked(self, feed) -> dict:
        missing = [n for n in self.input_names if n not in feed]
        extra = [n for n in feed if n not in self.input_names]
        if missing or extra:
            raise KeyError(f"engine inputs are {list(self.input_names)}; missing {missing}, unexpected {extra}")
        out = {}
        for name in self.input_names:
            tensor = feed[name]
            if tensor.device != self.device:
                raise ValueError(f"input {name!r} is on {tensor.device}, the engine runs on {self.device}")
            if tensor.dtype != self.dtypes[name]:
                raise TypeError(f"input {name!r} is {tensor.dtype}, the engine takes {self.dtypes[name]}")
            out[name] = tensor.contiguous()  # TensorRT reads linear, packed memory
        return out

    def _set_shapes(self, shapes: tuple) -> None:
        if shapes != self._shapes:
            self._shapes = None  # a failure half-way leaves the context in no known state
            _set_input_shapes(self.context, self.engine, dict(zip(self.input_names, shapes)))
            self._shapes = shapes

    def _enqueue(self) -> None:
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed; see TensorRT's log above")

    def _run(self, shapes: tuple, feed: dict) -> dict:
        self._set_shapes(shapes)
        outputs = _empty_outputs(self.context, {n: self.dtypes[n] for n in self.output_names}, self.device)
        _bind(self.context, {**feed, **outputs})
        self._enqueue()
        return outputs

    def _graphed(self, shapes: tuple, feed: dict) -> dict:
        entry = self._graphs.get(shapes)
        if entry is not None:
            self._graphs.move_to_end(shapes)
            graph, inputs, outputs = entry
            for name, tensor in feed.items():
                inputs[name].copy_(tensor)
            graph.replay()
            return outputs
        if shapes not in self._seen:  # capture only shapes that repeat
            self._seen.add(shapes)
            return self._run(shapes, feed)
        inputs = {name: tensor.clone() for name, tensor in feed.items()}
        outputs = self._run(shapes, inputs)  # TensorRT wants one enqueue after a shape change before capture
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):  # on torch's side stream, after a device synchronise
                self._enqueue()
        except RuntimeError:  # an engine with work that cannot be captured: run it eagerly from now on
            self._uncapturable.add(shapes)
            return outputs
        self._graphs[shapes] = (graph, inputs, outputs)
        if len(self._graphs) > _MAX_GRAPHS:
            self._graphs.popitem(last=False)
        return outputs


def load_stages(export_dir, *, device=None, cuda_graph: bool = False, build: bool = True, **build_options) -> dict:
    """``TrtStage`` per stage of an export directory, building missing plans first (``build_engines``)."""
    from .build import build_engines

    plans = build_engines(export_dir, build=build, device=device, **build_options)
    return {stage: TrtStage(path, device=device, cuda_graph=cuda_graph) for stage, path in plans.items()}
