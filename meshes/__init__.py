"""Geometry and meshes: the parameterized periodic hill, gmsh meshes periodic in x, MeshFields.

`meshes.fields`, `meshes.hill_profile` and `meshes.hill_geometry` need only numpy (and meshio for files); gmsh and
DOLFINx are imported when a mesh is built.
"""
