"""Networks by name: `CloudNetConfig.kind` -> class.

The built-in networks are listed here by the module and class that hold them, and a module is
imported when one of its networks is first looked up: a process that runs a vector-cloud network
never loads the graph networks' torch-geometric (2.6 s and 150 MB a process, measured here).
`@register("name")` adds a network of your own.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

BUILT_IN = {
    "vector_cloud": "vcnn.nn.cloud_nets:VectorCloudNet",
    "local_mlp": "vcnn.nn.cloud_nets:LocalMLP",
    "raw_cloud": "vcnn.nn.cloud_nets:RawCloudNet",
    "graph_kernel": "vcnn.nn.graph_nets:GraphKernelNet",
    "graph_kernel_raw": "vcnn.nn.graph_nets:RawGraphKernelNet",
    "message_passing": "vcnn.nn.graph_nets:MessagePassingNet",
    "whole_mesh": "vcnn.nn.whole_mesh:WholeMeshNet",
}


class Networks(Mapping):
    """{name: class}, loading a built-in network's module on first lookup."""

    def __init__(self, built_in: dict[str, str]):
        self._where = dict(built_in)
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        if name not in self._classes:
            module, _, cls = self._where[name].partition(":")
            self._classes[name] = getattr(importlib.import_module(module), cls)
        return self._classes[name]

    def __contains__(self, name) -> bool:  # without importing (Mapping's would look the class up)
        return name in self._where or name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter({**self._where, **self._classes})

    def __len__(self) -> int:
        return len(self._where.keys() | self._classes.keys())

    def add(self, name: str, cls: type) -> None:
        if name in self:
            raise ValueError(f"network {name!r} is registered twice ({self[name].__name__}, {cls.__name__})")
        self._classes[name] = cls


NETWORKS = Networks(BUILT_IN)


def register(name: str):
    """Class decorator: make the network buildable as `kind = name`."""

    def add(cls):
        NETWORKS.add(name, cls)
        return cls

    return add


def build_model(config):
    """The network of `config.kind` (a `CloudNetConfig`, which has checked the name)."""
    return NETWORKS[config.kind](config)
