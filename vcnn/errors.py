"""The exception type of the `vcnn` package; the specific errors below derive from it."""


class VcnnError(ValueError):
    """Invalid input to the learning side (clouds, features, models, data)."""
