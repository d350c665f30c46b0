"""The flows: one module per case family, each with the same small interface, and their registry.

A flow module defines
- `NAME`, `HELP`: the `vcnn solve` sub-command and its help;
- `add_arguments(parser)` and `values(args)`: its options and the configuration values they give;
- `configure(**values)`: the validated configuration (CaseError with one line before any work);
- `solve(config, comm, msh_path)`: the solved case (collective under MPI);
- `mesh_fields(solution, metadata, stage)` (collective) and `record(solution, fields, stage,
  figures)` (rank 0): the node fields, validation numbers and figures of a solve;
- `FAMILIES`: the dataset families (`cases.flows.families.Family`) whose cases it solves;
- `MEMORY_PER_CELL` (optional, with `config.resolution`): the measured peak bytes per cell, so
  that a mesh too large for the machine is refused before any work (`cases.limits`).

`vcnn solve <flow>` and `vcnn dataset <family>` are generated from `FLOWS`; a new flow is one new
module and one entry there.
"""

from __future__ import annotations

from cases.errors import CaseError
from cases.flows import airfoil_transport, channel_rans, hills_rans, hills_transport, phll_rans

FLOWS = {flow.NAME: flow for flow in (hills_transport, airfoil_transport, channel_rans, hills_rans, phll_rans)}
FAMILIES = {family.name: family for flow in FLOWS.values() for family in flow.FAMILIES}


def flow(name: str):
    """The flow module called `name`."""
    if name not in FLOWS:
        raise CaseError(f"unknown flow {name!r}; choose from {', '.join(FLOWS)}")
    return FLOWS[name]


def family(name: str):
    """The dataset family called `name`."""
    if name not in FAMILIES:
        raise CaseError(f"unknown case family {name!r}; choose from {sorted(FAMILIES)}")
    return FAMILIES[name]
