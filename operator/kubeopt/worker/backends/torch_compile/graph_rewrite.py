"""Replacing weight-carrying nodes of a torch.export program's aten graph with low-precision calls.

float8 and int8 targets both swap ``aten.linear`` (and int8 also 1x1 ``aten.conv2d``) for a
function that takes the quantized weight and its scales as new buffers; this is the shared walk.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NewBuffer:
    """A tensor argument of a replacement call, stored in the module as ``<prefix><n>_<suffix>``."""

    suffix: str
    tensor: Any


# (node, its constant weight) -> (function, its arguments, NewBuffer for the quantized tensors),
# or None to leave the node alone.
Replacement = Callable[[Any, Any], tuple[Callable[..., Any], tuple[Any, ...]] | None]


def remove_unused_attributes(module: Any, targets: set[str]) -> None:
    """Drop replaced weights, so the saved program does not carry both copies."""
    still_used = {node.target for node in module.graph.nodes if node.op == "get_attr"}
    for target in targets - still_used:
        owner_path, _, name = target.rpartition(".")
        owner = module.get_submodule(owner_path) if owner_path else module
        if hasattr(owner, name):
            delattr(owner, name)


def replace_weighted_nodes(module: Any, targets: set[Any], replacement: Replacement, prefix: str) -> int:
    """For every call of one of ``targets`` whose second argument is a constant weight, ask
    ``replacement`` for a new call; its NewBuffer arguments become buffers named after ``prefix``.
    The module is changed in place; returns how many nodes were replaced."""
    graph = module.graph
    replaced = 0
    old_weights: set[str] = set()
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in targets or len(node.args) < 2:
            continue
        weight_node = node.args[1]
        if getattr(weight_node, "op", None) != "get_attr":
            continue
        found = replacement(node, operator.attrgetter(weight_node.target)(module))
        if found is None:
            continue
        function, arguments = found
        with graph.inserting_before(node):
            graph_arguments = []
            for value in arguments:
                if isinstance(value, NewBuffer):
                    name = f"{prefix}{replaced}_{value.suffix}"
                    module.register_buffer(name, value.tensor)
                    value = graph.get_attr(name)
                graph_arguments.append(value)
            call = graph.call_function(function, tuple(graph_arguments))
        call.meta = dict(node.meta)
        node.replace_all_uses_with(call)
        graph.erase_node(node)
        old_weights.add(weight_node.target)
        replaced += 1
    graph.eliminate_dead_code()
    remove_unused_attributes(module, old_weights)
    graph.lint()
    module.recompile()
    return replaced
