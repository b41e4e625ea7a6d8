"""Load a published torch-compile artifact the way kubeopt validated and benchmarked it.

kubeopt copies this file, unchanged, beside ``model.pt2`` as ``load.py``, and its worker runs
that copy to read the artifact back before validating and timing it: what a server runs is
what kubeopt measured. It needs torch only; ``serve.json`` (written beside it) lists the
modules that register the program's operators (int8 on a CPU holds torch's own
``quantized_decomposed`` ops, registered by ``torch.ao.quantization.fx._decomposed``), the
Dynamo/Inductor settings and the ``torch.compile`` arguments the target was built with.

In a server::

    import runpy
    load = runpy.run_path("path/to/run/load.py")["load"]
    model, input_dtype = load("path/to/run")
    outputs = model(pixels.to(input_dtype or pixels.dtype))

This module imports nothing of kubeopt (a server does not have it).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

RECIPE = "serve.json"


def read_recipe(folder: str | Path) -> dict[str, Any]:
    """The artifact's ``serve.json``: file, device, imports, settings and compile arguments."""
    recipe: dict[str, Any] = json.loads((Path(folder) / RECIPE).read_text())
    return recipe


def load_module(folder: str | Path, device: str | None = None) -> Any:
    """The published program as a module on ``device`` (the build's device by default), not compiled."""
    import torch

    recipe = read_recipe(folder)
    for name in recipe["imports"]:  # operators the program holds that torch registers only on import
        importlib.import_module(name)
    device = device or recipe["device"]
    path = Path(folder) / recipe["file"]
    if path.suffix == ".pt2":
        module = torch.export.load(str(path)).module().to(device)
    else:
        module = torch.jit.load(str(path), map_location=device).eval()
    if recipe["channelsLast"]:
        module = module.to(memory_format=torch.channels_last)
    return module


def compile_module(module: Any, recipe: dict[str, Any]) -> Any:
    """``torch.compile`` with the build's settings (process-wide: set them before any other compile)."""
    import torch

    for name, value in recipe["dynamo"].items():
        setattr(torch._dynamo.config, name, value)
    for name, value in recipe["inductor"].items():
        setattr(torch._inductor.config, name, value)
    if recipe["cudnnBenchmark"] is not None:
        torch.backends.cudnn.benchmark = recipe["cudnnBenchmark"]
    return torch.compile(module, **recipe["compile"])


def input_dtype(recipe: dict[str, Any]) -> Any:
    """The torch dtype floating-point inputs are cast to (None: as given)."""
    import torch

    name = recipe["inputDtype"]
    return None if name is None else getattr(torch, name)


def load(folder: str | Path = Path(__file__).parent, device: str | None = None) -> tuple[Any, Any]:
    """(the compiled model, the dtype its floating-point inputs take or None)."""
    recipe = read_recipe(folder)
    return compile_module(load_module(folder, device), recipe), input_dtype(recipe)
