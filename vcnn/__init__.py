"""The learning side of vcnn (torch): clouds, frame-invariant models, training, symmetry checks.

Imports `meshes` only (for MeshFields), never dolfinx, so it runs on machines without FEniCSx.
"""
