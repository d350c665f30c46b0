"""gmsh models -> distributed DOLFINx meshes, and meshes with facet tags -> XDMF.

Shared by every domain builder: the model is built on rank 0 only, optionally written as .msh
(via a temporary name, then renamed) and distributed over `comm`.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from pathlib import Path
from typing import Callable


def dolfinx_mesh(build: Callable, comm=None, msh_path: str | Path | None = None, gdim: int = 2):
    """(mesh, facet tags) of the gmsh model that `build(gmsh)` creates and meshes on rank 0."""
    handler = signal.getsignal(signal.SIGINT)
    import gmsh
    from dolfinx.io import gmshio
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    _keep(handler)
    openmp = _openmp()
    threads = openmp.omp_get_max_threads() if openmp else None
    gmsh.initialize([], readConfigFiles=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        if comm.rank == 0:
            build(gmsh)
            if msh_path is not None:
                msh_path = Path(msh_path)
                tmp = msh_path.with_name(f".{msh_path.stem}.partial.msh")
                gmsh.write(str(tmp))
                tmp.replace(msh_path)
        mesh, _, facet_tags = gmshio.model_to_mesh(gmsh.model, comm, 0, gdim=gdim)
    finally:
        gmsh.finalize()
        _keep(handler)
        if threads:
            openmp.omp_set_num_threads(threads)
    return mesh, facet_tags


def _openmp():
    """The process's OpenMP runtime (GNU libgomp), or None. gmsh's initialize sets its thread count
    to 1 (gmsh's General.NumThreads), and that outlives gmsh's finalize: every later OpenMP user in
    the process ran on one thread, torch among them (the closure's network took 1.2 to 1.8 times as
    long in the coupled loop, whose mesh is built first). `dolfinx_mesh` puts the count back."""
    try:
        return ctypes.CDLL("libgomp.so.1")
    except OSError:
        return None


def _keep(handler) -> None:
    """Put back the caller's SIGINT handler: gmsh's import sets SIGINT to kill the process outright
    and its finalize sets back what was there at its import, so a Ctrl-C while meshing would leave
    the caller no chance to clean up (with the handler kept, it is noticed when meshing returns)."""
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)


def write_xdmf(mesh, facet_tags, path: str | Path) -> None:
    """Write a mesh and its facet tags to XDMF (collective)."""
    from dolfinx.io import XDMFFile

    mesh.topology.create_connectivity(mesh.topology.dim - 1, mesh.topology.dim)
    with XDMFFile(mesh.comm, str(path), "w") as xdmf:
        xdmf.write_mesh(mesh)
        xdmf.write_meshtags(facet_tags)
