"""Networks by name: `CloudNetConfig.kind` -> class. A network module registers its classes with
`@register("name")`; `vcnn.nn` imports every network module, so the registry is full as soon as
any of `vcnn.nn` is imported."""

from __future__ import annotations

NETWORKS: dict[str, type] = {}


def register(name: str):
    """Class decorator: make the network buildable as `kind = name`."""

    def add(cls):
        if name in NETWORKS:
            raise ValueError(f"network {name!r} is registered twice ({NETWORKS[name].__name__}, {cls.__name__})")
        NETWORKS[name] = cls
        return cls

    return add


def build_model(config):
    """The network of `config.kind` (a `CloudNetConfig`, which has checked the name)."""
    return NETWORKS[config.kind](config)
