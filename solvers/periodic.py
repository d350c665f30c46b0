"""Periodicity in x through dolfinx_mpc: right-boundary dofs are slaves of left-boundary dofs."""

from __future__ import annotations

import dolfinx_mpc

from meshes.periodic_domain import TAGS, PeriodicDomain


def periodic_constraint(domain: PeriodicDomain, space, bcs) -> dolfinx_mpc.MultiPointConstraint:
    """A finalized constraint u(right) = u(left) on every component of `space`.

    Dofs carrying a Dirichlet condition in `bcs` (the wall corners) stay Dirichlet dofs.
    """
    mpc = dolfinx_mpc.MultiPointConstraint(space)
    # dolfinx_mpc 0.5 finds no slaves for a vector sub-space of a mixed space, but handles
    # the whole space and scalar sub-spaces: constrain mixed spaces leaf by leaf.
    for sub in _scalar_leaves(space) if space.num_sub_spaces and _is_mixed(space) else [space]:
        mpc.create_periodic_constraint_topological(sub, domain.facet_tags, TAGS["right"], domain.periodic_relation(), bcs)
    mpc.finalize()
    return mpc


def _is_mixed(space) -> bool:
    return any(space.sub(i).num_sub_spaces for i in range(space.num_sub_spaces)) or len(
        {space.sub(i).ufl_element() for i in range(space.num_sub_spaces)}
    ) > 1


def _scalar_leaves(space) -> list:
    if space.num_sub_spaces == 0:
        return [space]
    return [leaf for i in range(space.num_sub_spaces) for leaf in _scalar_leaves(space.sub(i))]
