"""The exception type of the `cases` package (bad command-line input, unusable output directory),
and the check that turns a configuration's mesh and solver errors into it."""


class CaseError(ValueError):
    """Invalid input for a case or its output directory."""


def build_parts(config) -> None:
    """Build every part a configuration names in `parts` (properties that raise MeshError or
    SolverError on bad input) and turn their errors into one-line CaseErrors."""
    from meshes.errors import MeshError
    from solvers.errors import SolverError

    try:
        for part in config.parts:
            getattr(config, part)
    except (MeshError, SolverError) as err:
        raise CaseError(str(err)) from None
