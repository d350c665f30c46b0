"""Geometry and meshes: the parameterized periodic hill, gmsh meshes periodic in x, MeshFields.

`meshes.fields` and `meshes.hill_profile` need only numpy (and meshio for files); gmsh and
DOLFINx are imported when a mesh is built.
"""
