"""FEniCSx (DOLFINx 0.5) PDE solvers: Navier-Stokes, scalar transport, wall distance, export.

Imports `meshes` only, never torch. A closure enters a solver as a plain callable on numpy
arrays; `solvers.errors` holds the package's exception types.
"""
