"""The one exception type of the `meshes` package."""


class MeshError(ValueError):
    """Invalid geometry or resolution, or an unreadable mesh-field file."""
