"""The networks: one module a family, each class registered by name (`vcnn.nn.registry`).

A new network is one new module with `@register("name")` on its class and one import line here.
"""

from vcnn.nn import cloud_nets, graph_nets, whole_mesh  # noqa: F401  (registers the networks)
from vcnn.nn.base import ALL_TRANSFORMS, OUTPUT_KINDS, CloudNet, CloudNetConfig, ModelError
from vcnn.nn.registry import NETWORKS, build_model, register

__all__ = ["ALL_TRANSFORMS", "OUTPUT_KINDS", "NETWORKS", "CloudNet", "CloudNetConfig", "ModelError", "build_model", "register"]
