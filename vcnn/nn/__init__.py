"""The networks: one module a family, each class listed by name in `vcnn.nn.registry`.

A new network is one new module and one line in `registry.BUILT_IN` (or `@register("name")` on a
class of your own); its module is loaded when a network of its kind is first built.
"""

from vcnn.nn.base import ALL_TRANSFORMS, OUTPUT_KINDS, CloudNet, CloudNetConfig, ModelError
from vcnn.nn.registry import NETWORKS, build_model, register

__all__ = ["ALL_TRANSFORMS", "OUTPUT_KINDS", "NETWORKS", "CloudNet", "CloudNetConfig", "ModelError", "build_model", "register"]
