"""Inductor without Dynamo for torch-export models: compiled graphs stored with the artifact.

torch.compile traces the model with Dynamo in every process, even when its caches hold the
compiled code, and loading those caches goes through Dynamo and AOTAutograd again: on an H100
a ResNet-50 target that compiles in 8-12 s still spends about 2 s there on a warm run. An
exported program needs no tracing: ``torch._inductor.standalone_compile`` compiles its graph
directly and returns a ``CompiledArtifact`` that can be saved and loaded in another process,
where calling it runs the compiled code with no tracing or lowering at all.

One graph is compiled per input shape (the batch sizes the spec benchmarks; the validation
batch when it first arrives). Weights are not in the artifact: the graph takes them as its
first inputs (an exported program's lifted parameters and buffers), in the order recorded in
the bundle's index. The index also holds a key (the graph's code, every weight's shape, dtype
and strides, the input shapes, the compile options, torch's version and the GPU), and a stored
artifact is only loaded when the key matches.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import operator
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubeopt.worker.frameworks import require

log = logging.getLogger(__name__)
BUNDLE_FILE = "compiled-graphs.zip"  # with the artifact; "compile*" files are listed as model files
INDEX_FILE = "index.json"
Shape = tuple[tuple[int, ...], ...]


def _shapes(inputs: tuple[Any, ...]) -> Shape:
    return tuple(tuple(int(d) for d in tensor.shape) for tensor in inputs)


def flat_graph(program: Any) -> tuple[Any, list[str]]:
    """The exported program's graph with flat inputs (lifted weights first, then the model's
    inputs) and no export guard call; and the weights' names in input order."""
    torch = require("torch", "torch-compile")
    from torch.export.graph_signature import InputKind

    names = []
    for spec in program.graph_signature.input_specs:
        if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
            names.append(spec.target)
        elif spec.kind is not InputKind.USER_INPUT:
            # Lifted constants, script objects and tokens have no attribute to look up on the next run.
            raise ValueError(f"exported graph takes a {spec.kind.name.lower()} input ({spec.arg.name})")
    graph = copy.deepcopy(program.graph_module.graph)
    graph._codegen = torch.fx.graph.CodeGen()  # flat arguments, not the exported pytree
    for node in list(graph.nodes):
        # export's input guard is a submodule whose forward cannot be pickled into a cache key
        if node.op == "call_module" and node.target == "_guards_fn":
            graph.erase_node(node)
    module = torch.fx.GraphModule(program.graph_module, graph)
    if hasattr(module, "_guards_fn"):
        delattr(module, "_guards_fn")
    return module, names


def weights_of(module: Any, names: list[str]) -> list[Any]:
    return [operator.attrgetter(name)(module) for name in names]


def graph_key(module: Any, shapes: list[Shape], options: dict[str, Any], device: str) -> str:
    """What a stored artifact must have been compiled from to be reused."""
    torch = require("torch", "torch-compile")
    weights = [(name, tuple(t.shape), str(t.dtype), tuple(t.stride()))
               for name, t in sorted({**dict(module.named_parameters()), **dict(module.named_buffers())}.items())]
    gpu = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    text = json.dumps({"code": module.code, "weights": weights, "shapes": sorted(shapes), "options": options,
                       "torch": torch.__version__, "device": gpu}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class PrecompiledGraphs:
    """Calls the compiled graph for the inputs' shapes; compiles one on the fly for a new shape."""

    def __init__(self, module: Any, options: dict[str, Any]) -> None:
        self.torch = require("torch", "torch-compile")
        self.module = module
        self.options = options
        self.graphs: dict[Shape, tuple[Any, list[str]]] = {}
        self.loaded = 0
        self.stored: dict[Shape, bytes] = {}  # the serialized form of each loaded graph
        self.compile_seconds = 0.0  # exporting and compiling graphs for new shapes

    def compile(self, inputs: tuple[Any, ...]) -> None:
        torch = self.torch
        started = time.perf_counter()
        # Outside inference mode (the runner calls in it): under it torch records no cache artifact to
        # save. Without grad, so the graph is an inference graph all the same.
        with torch.inference_mode(False), torch.no_grad():
            inputs = tuple(t.clone() for t in inputs)  # normal tensors, not inference tensors
            program = torch.export.export(self.module, inputs)
            graph, names = flat_graph(program)
            example = [*weights_of(self.module, names), *inputs]
            # Options as Inductor config patches, around compiling and loading alike: the CUDA-graph wrapper
            # is set up when a compiled graph is loaded (torch 2.11 and 2.15 also spell ``options`` differently).
            with torch._inductor.config.patch(self.options):
                artifact = torch._inductor.standalone_compile(graph, example, dynamic_shapes="from_example_inputs",
                                                              options={})
        self.graphs[_shapes(inputs)] = (artifact, names)
        self.compile_seconds += time.perf_counter() - started

    def __call__(self, *inputs: Any) -> Any:
        shape = _shapes(inputs)
        if shape not in self.graphs:
            self.compile(inputs)
        artifact, names = self.graphs[shape]
        return artifact(*weights_of(self.module, names), *inputs)

    def save(self, path: Path, key: str) -> None:
        """One zip with each compiled graph and an index naming its shapes, weights and key."""
        entries = []
        with tempfile.TemporaryDirectory() as scratch, zipfile.ZipFile(path, "w") as bundle:
            for index, (shape, (artifact, names)) in enumerate(self.graphs.items()):
                name = f"graph-{index}.bin"
                if shape in self.stored:  # a loaded artifact cannot be saved again; its bytes can
                    bundle.writestr(name, self.stored[shape])
                else:
                    artifact.save(path=str(Path(scratch) / name), format="binary")
                    bundle.write(Path(scratch) / name, name)
                entries.append({"file": name, "shapes": [list(s) for s in shape], "weights": names})
            bundle.writestr(INDEX_FILE, json.dumps({"key": key, "graphs": entries}, indent=2))

    def load(self, path: Path, key: str) -> bool:
        """Load the graphs stored at ``path`` if they were compiled for ``key``; whether they were."""
        if not path.exists():
            return False
        with tempfile.TemporaryDirectory() as scratch, zipfile.ZipFile(path) as bundle:
            index = json.loads(bundle.read(INDEX_FILE))
            if index.get("key") != key:
                log.info("stored compiled graphs are for another graph, options, torch or GPU; compiling")
                return False
            bundle.extractall(scratch)
            load: Callable[..., Any] = self.torch._inductor.CompiledArtifact.load
            with self.torch._inductor.config.patch(self.options):
                for entry in index["graphs"]:
                    shape = tuple(tuple(s) for s in entry["shapes"])
                    artifact = load(path=str(Path(scratch) / entry["file"]), format="binary")
                    self.graphs[shape] = (artifact, entry["weights"])
                    self.stored[shape] = bundle.read(entry["file"])
        self.loaded = len(index["graphs"])
        return True
