"""Training targets from the LES of the Closure Challenge hills, and the propagation test that
measures the ceiling of each before anything is trained (issue 17, part 1).

The LES data (PHLL29: U_LES, k_LES, tauij_LES at the benchmark's cell centres) are interpolated
onto the nodes of our k-omega SST solution of the same hill, with no-slip values (zero velocity,
stress and k) on the walls (`les_on_mesh`).
`tauij_LES` is <u'_i u'_j> (positive normal stresses, <u'v'> of opposite sign to dU/dy in the
shear layer: checked on alpha_05_10071_4048, 99.8 % of tau_xx > 0, sign(dU/dy tau_xy) = -0.78 on
average), so the anisotropic stress a = tau - (2/3) k I and the Boussinesq model a = -2 nu_t S.

The optimal eddy viscosity is the least-squares fit of a on S, pulled towards a prior nu_0 (our
SST's nu_t) with weight s0:
    nu_t* = argmin |a + 2 nu S|^2 + 4 s0 (nu - nu_0)^2 = (-(a:S)/2 + s0 nu_0) / (S:S + s0),
clipped at >= 0. Where S:S >> s0 it is the plain fit -(a:S)/(2 S:S); where the strain vanishes
(channel centre, bubble core) it tends to the prior instead of dividing by zero. s0 is a fraction
(`REGULARISATION`) of the domain mean of S:S. In 2-D mean flow the in-plane contraction equals the
3-D one (S has no z entries), so the 2 x 2 blocks suffice.

The force candidates freeze, besides a nu_t, the remainder of the LES stress that this nu_t does not
carry, a_perp = a + 2 nu_t S_LES, as an explicit stress in the momentum equations (its divergence a
body force, in weak form: `solvers.rans.MeanFlow.freeze_stress`).

The candidates (`CANDIDATES`):
- `sst`: our SST's own nu_t, frozen (a control: it must give back SST's score);
- `optimal_les_strain`: nu_t* with S of the LES velocity (the ceiling of an eddy-viscosity target);
- `optimal_rans_strain`: nu_t* with S of our SST velocity (what a network sees at inference);
- `les_k_sst_omega`: k_LES / omega_SST, SST's nu_t with the LES turbulent kinetic energy (a cheap,
  smooth target: the LES's energy, SST's time scale);
- `optimal_les_strain_plus_force`: nu_t* of `optimal_les_strain` plus its remainder a_perp as a
  frozen stress (the whole LES stress, split into a part that damps and a part that does not);
- `les_stress_force`: nu_t = 0 and the whole LES anisotropic stress a frozen (the "inject the exact
  LES stress" variant, which published work finds can give a worse velocity than the RANS model;
  from the SST state it needs the continuation, and converges on three of six starts, as the
  relaxed nu_t decays to zero: docs/results.md).

The propagation test: each candidate frozen (`solvers.rans.FrozenClosure`) in our RANS solve of the
same hill and mesh, converged (the momentum equations alone, from the candidate nu_t), scored
against U_LES (`cases.studies.score.score_shared_case`) next to our SST's own score, with the
reattachment of SST, the candidate and the LES.

    vcnn propagate --case alpha_05_10071_4048 --sst RUN_DIR --out DIR
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from cases.errors import CaseError
from meshes.fields import MeshFields

log = logging.getLogger("vcnn")

LES_FIELDS = ("U_LES", "k_LES", "tauij_LES")
REGULARISATION = 0.01
"""s0 as a fraction of the domain mean of S:S."""
CANDIDATES = ("sst", "optimal_les_strain", "optimal_rans_strain", "les_k_sst_omega", "optimal_les_strain_plus_force", "les_stress_force")
FORCES = ("optimal_les_strain_plus_force", "les_stress_force")
"""The candidates that also freeze the LES stress their nu_t leaves, a + 2 nu_t S_LES (`remaining_stresses`)."""
PHLL29 = Path("../shared/reference/closure_challenge/PHLL29")
VALIDATION = ("alpha_05_10071_4048", "alpha_05_10071_2024", "alpha_15_7929_4048", "alpha_15_7929_2024")
"""The validation cases of the suggested split; the test cases (alpha_15_13929_*, alpha_05_4071_*) never."""
CONTINUATION = 10
"""Iterations over which a target that diverges from the SST state is handed over from SST's nu_t."""
LADDER = ("direct", "continuation", "pseudo-time continuation")
"""How a frozen target is solved (`solve_frozen`), each tried where the one before it failed."""
BENCHMARK = "benchmark"
"""`--sst benchmark`: the benchmark's SST (PHLL29 time 20000) as the start, where ours does not converge."""
WALL = 1e-12
"""Wall distance below which a node lies on a wall."""


def strain_tensor(fields: MeshFields, velocity) -> np.ndarray:
    """S = sym(grad u) at the nodes, (N, 2, 2), from the P1 interpolant of node velocities."""
    from meshes.gradients import node_gradients

    grad = node_gradients(fields, velocity)
    return 0.5 * (grad + grad.transpose(0, 2, 1))


def anisotropic_stress(stress, k) -> np.ndarray:
    """a = tau - (2/3) k I (in-plane block), tau = <u'_i u'_j>."""
    stress, k = np.asarray(stress, float), np.asarray(k, float)
    return stress - (2.0 / 3.0) * k[:, None, None] * np.eye(2)


def optimal_eddy_viscosity(anisotropy, strain, prior, weights=None, regularisation: float = REGULARISATION) -> np.ndarray:
    """nu_t* = max(0, (-(a:S)/2 + s0 nu_0) / (S:S + s0)), s0 = `regularisation` x the (weighted)
    mean of S:S: the least-squares fit of a = -2 nu S, pulled towards `prior` where S vanishes."""
    a, s = np.asarray(anisotropy, float), np.asarray(strain, float)
    ss = np.einsum("nij,nij->n", s, s)
    mean = np.average(ss, weights=weights)
    if not mean > 0:
        raise CaseError("the strain rate vanishes everywhere: no eddy viscosity can be fitted")
    s0 = regularisation * mean
    return np.maximum(0.0, (-0.5 * np.einsum("nij,nij->n", a, s) + s0 * np.asarray(prior, float)) / (ss + s0))


def les_on_mesh(case_dir, sst: MeshFields) -> MeshFields:
    """U_LES, k_LES, tauij_LES of a PHLL29 case on the nodes of `sst` (`centres_on_mesh`)."""
    return centres_on_mesh(read_les(case_dir), sst, LES_FIELDS)


def centres_on_mesh(centres: MeshFields, mesh: MeshFields, names) -> MeshFields:
    """Fields of the benchmark's cell centres that vanish on the walls (velocity, stress, k, nu_t) on
    the nodes of `mesh` (which carries `wall_distance`). The benchmark's cell centres stop half a
    cell short of the walls; our wall nodes join them as no-slip points (zero values), so that the
    strip between the walls and the first centres is a linear ramp to the wall (not the first
    centre's value held constant, which would flatten the near-wall strain)."""
    from meshes.errors import MeshError
    from meshes.interpolate import resample

    wall = mesh["wall_distance"] < WALL
    data = {name: np.concatenate([centres[name], np.zeros((wall.sum(),) + centres[name].shape[1:])]) for name in names}
    source = MeshFields(np.r_[centres.points, mesh.points[wall]], centres.cells, centres.cell_type, np.r_[centres.weights, np.zeros(wall.sum())], data, centres.metadata)
    try:
        result = resample(source, mesh, names)
    except MeshError as err:
        raise CaseError(str(err)) from None
    for name in names:  # a wall node inside a quad of centres (a chord across a curved wall)
        result[name][wall] = 0.0
    return result


def read_les(case_dir) -> MeshFields:
    """The LES fields of a PHLL29 case at its cell centres."""
    from meshes.errors import MeshError
    from meshes.openfoam import read_case

    try:
        return read_case(case_dir, time="0", fields=list(LES_FIELDS))
    except MeshError as err:
        raise CaseError(str(err)) from None


def benchmark_sst(case_dir) -> MeshFields:
    """The benchmark's own k-omega SST solution at its cell centres, named as our solves name their
    fields, with the configuration of our default phll-rans solve of that hill: the start and the
    targets' node set where our SST does not converge (the low hills). Reattachment from the sign
    of u_x along the first row of centres."""
    import dataclasses

    from cases.flows import phll_rans
    from meshes.errors import MeshError
    from meshes.openfoam import read_case

    case_dir = Path(case_dir)
    try:
        bench = read_case(case_dir, fields=["U", "nut", "k", "omega", "walldist"])
    except MeshError as err:
        raise CaseError(str(err)) from None
    config = dataclasses.asdict(phll_rans.configure(geometry=case_dir.name))
    data = {"velocity": bench["U"], "nu_t": bench["nut"], "k": bench["k"], "omega": bench["omega"], "wall_distance": bench["walldist"]}
    bubble = first_row_bubble(bench, bench["U"])
    metadata = {
        **bench.metadata, "nu": 1.0 / config["reynolds"], "config": config, "statistics": {"forcing": 0.0},
        "validation": {what: bubble[what] for what in ("separation", "reattachment", "recirculation_end")},
    }
    return MeshFields(bench.points, bench.cells, bench.cell_type, bench.weights, data, metadata)


def candidate_targets(sst: MeshFields, les: MeshFields, names=CANDIDATES, regularisation: float = REGULARISATION) -> dict[str, np.ndarray]:
    """The candidate nu_t targets on the nodes of `sst` (our SST solution), `les` on the same nodes."""
    unknown = sorted(set(names) - set(CANDIDATES))
    if unknown:
        raise CaseError(f"unknown target {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}")
    a = anisotropic_stress(les["tauij_LES"], les["k_LES"])
    build = {
        "sst": lambda: sst["nu_t"],
        "optimal_les_strain": lambda: optimal_eddy_viscosity(a, strain_tensor(sst, les["U_LES"]), sst["nu_t"], sst.weights, regularisation),
        "optimal_rans_strain": lambda: optimal_eddy_viscosity(a, strain_tensor(sst, sst["velocity"]), sst["nu_t"], sst.weights, regularisation),
        "les_k_sst_omega": lambda: _les_k_sst_omega(sst, les),
    }
    build["optimal_les_strain_plus_force"] = build["optimal_les_strain"]
    build["les_stress_force"] = lambda: np.zeros(sst.num_nodes)
    return {name: np.asarray(build[name](), float) for name in names}


def remaining_stresses(sst: MeshFields, les: MeshFields, targets: dict) -> dict[str, np.ndarray]:
    """For each force candidate among `targets` (name -> nu_t), the LES anisotropic stress its
    eddy viscosity does not carry, a_perp = a + 2 nu_t S_LES, (N, 2, 2) on the nodes of `sst`."""
    a = anisotropic_stress(les["tauij_LES"], les["k_LES"])
    strain = strain_tensor(sst, les["U_LES"])
    return {name: remaining_stress(a, strain, nu_t) for name, nu_t in targets.items() if name in FORCES}


def remaining_stress(anisotropy, strain, nu_t, traceless: bool = False) -> np.ndarray:
    """a_perp = a + 2 nu_t S: what of the anisotropic stress a the eddy viscosity nu_t does not
    carry, (N, 2, 2). `traceless` drops its in-plane trace, whose divergence is a gradient that the
    pressure absorbs (the velocity does not feel it): what a network needs to learn."""
    remainder = np.asarray(anisotropy, float) + 2.0 * np.asarray(nu_t, float)[:, None, None] * np.asarray(strain, float)
    if traceless:
        remainder = remainder - 0.5 * np.trace(remainder, axis1=1, axis2=2)[:, None, None] * np.eye(2)
    return remainder


def basis_coefficient(remainder, basis, regularisation: float = REGULARISATION) -> np.ndarray:
    """beta = (a_perp:T) / (T:T + t0), t0 = `regularisation`: the least-squares multiple of the
    dimensionless basis T (`vcnn.closure.stress_basis`, T:T <= 1/2), towards 0 where T vanishes."""
    return np.einsum("nij,nij->n", remainder, basis) / (np.einsum("nij,nij->n", basis, basis) + regularisation)


def _les_k_sst_omega(sst: MeshFields, les: MeshFields) -> np.ndarray:
    if "omega" not in sst.point_data:
        raise CaseError("the SST solution has no omega (solve it with --model k-omega-sst)")
    omega = sst["omega"]
    return np.where(omega > 0, np.maximum(les["k_LES"], 0.0) / np.where(omega > 0, omega, 1.0), 0.0)


def les_reattachment(case_dir) -> float | None:
    """x/H of the LES reattachment: sign changes of U_LES x along the first row of cell centres."""
    les = read_les(case_dir)
    return first_row_reattachment(les, les["U_LES"])


def first_row_reattachment(centres: MeshFields, velocity) -> float | None:
    """x/H of the reattachment of a velocity at the benchmark's cell centres (`first_row_bubble`)."""
    return first_row_bubble(centres, velocity)["reattachment"]


def first_row_bubble(centres: MeshFields, velocity) -> dict:
    """Separation, reattachment and the end of the recirculation (`hills_rans.bubbles`) of a velocity
    at the benchmark's cell centres (numbered x-fastest): sign changes of u_x along the first row,
    half a cell off the lower wall (no wall shear is stored)."""
    from cases.flows.hills_rans import wall_crossings

    x = centres.points[:, 0]
    nx = int(np.flatnonzero(np.diff(x) < 0)[0]) + 1
    return wall_crossings(x[:nx], np.asarray(velocity)[:nx, 0], centres.metadata["periods"][0][0])


def frozen_closure(sst: MeshFields, nu_t: np.ndarray, blend: int = 0, stress: np.ndarray | None = None):
    """`make_closure(flow, pde)` for `cases.flows.hills_rans.solve`: `nu_t` (on the nodes of `sst`)
    frozen, the flow started from the SST velocity and body force (Newton from rest with a
    converged nu_t diverges) and from `nu_t`, or with `blend` > 0 from SST's nu_t, handed over to
    `nu_t` linearly in that many iterations (a continuation for targets far from SST's, where one
    Newton solve from the SST state diverges). With `stress` (N, 2, 2), that stress frozen in the
    momentum equations too (ramped in from zero alongside the hand-over). The solve's mesh must be
    the SST run's."""
    from solvers.export import set_node_values
    from solvers.rans import BlendedClosure, FrozenClosure, NodeClosure

    def build(flow, pde):
        fields = flow.mesh_fields()  # collective; None off rank 0 (serial only where the nodes differ)
        same = fields is not None and fields.num_nodes == sst.num_nodes and np.allclose(fields.points, sst.points, atol=1e-9)
        if flow.domain.comm.bcast(same, root=0):
            target, start, velocity, extra = nu_t, sst["nu_t"], sst["velocity"], stress
        else:  # the benchmark's centres: interpolated onto our nodes, no slip on the walls
            from meshes.interpolate import interpolate

            target, start, velocity = (interpolate(sst, v, fields.points) for v in (nu_t, sst["nu_t"], sst["velocity"]))
            velocity[fields["wall_distance"] < WALL] = 0.0
            extra = None if stress is None else interpolate(sst, stress, fields.points)
            if extra is not None:
                extra[fields["wall_distance"] < WALL] = 0.0
        set_node_values(flow.domain, start if blend else target, flow.nu_t)
        if stress is not None:
            extra = flow.domain.comm.bcast(extra, root=0)
            flow.freeze_stress(0.0 * extra if blend else extra)
        flow.start_from(velocity, sst.metadata["statistics"]["forcing"])
        frozen = NodeClosure(FrozenClosure(target))
        if not blend:
            return frozen
        blended = BlendedClosure(NodeClosure(FrozenClosure(start)), frozen, blend)
        return blended if stress is None else StressRamp(blended, extra, blend)

    return build


class StressRamp:
    """A closure that also ramps a frozen stress in: w a after its k-th update, w = min(1, (k - 1) /
    `iterations`), in step with `BlendedClosure`'s hand-over of nu_t over as many iterations."""

    names = ("nu_t",)

    def __init__(self, closure, stress: np.ndarray, iterations: int):
        self.closure, self.stress, self.iterations, self.updates = closure, stress, iterations, 0

    def update(self, flow) -> dict:
        flow.freeze_stress(min(1.0, self.updates / self.iterations) * self.stress)
        self.updates += 1
        return self.closure.update(flow)


def propagate(sst: MeshFields, nu_t: np.ndarray, stress: np.ndarray | None = None):
    """Our RANS solve of the SST run's hill and mesh with `nu_t` (and `stress`) frozen, converged
    (`solve_frozen`): (MeshFields, separation dict, statistics, the `LADDER` rung that converged)."""
    from cases.flows import phll_rans
    from cases.flows.hills_rans import separation

    config = phll_rans.PhllRansConfig(**sst.metadata["config"])
    solution, rung = solve_frozen(config, sst, nu_t, stress)
    fields = solution.mesh_fields({"case": "les-target propagation", "config": sst.metadata["config"]})
    return fields, separation(solution), solution.statistics(), rung


def solve_frozen(config, sst: MeshFields, nu_t: np.ndarray, stress: np.ndarray | None = None, what: str = "a frozen target"):
    """`phll_rans.solve(config)` with `nu_t` (and `stress`) frozen, from the SST state `sst`, by the
    first rung of `LADDER` that converges: one solve straight from the SST state; else the values
    handed over from SST's in `CONTINUATION` iterations; else the same hand-over with each momentum
    solve one pseudo-time step (from `CONTINUED_DT`, at most `CONTINUED_DT_MAX`, as our SST solves
    continue from k-omega): seed 2 of `cases/phll_closure_basis.toml` on alpha_05_10071_2024
    diverged at the end of the plain hand-over and converged so in 65 iterations. Returns
    (solution, rung); the last rung's failure is raised (collective)."""
    import dataclasses

    from mpi4py import MPI

    from cases.flows import phll_rans
    from solvers.errors import ConvergenceError

    for rung in LADDER:
        blend = 0 if rung == "direct" else CONTINUATION
        parameters = None if rung != LADDER[-1] else dataclasses.replace(
            config.rans_parameters, dt=phll_rans.CONTINUED_DT, dt_max=phll_rans.CONTINUED_DT_MAX, momentum_pseudo_time=True)
        try:
            return phll_rans.solve(config, MPI.COMM_WORLD, None, frozen_closure(sst, nu_t, blend, stress), parameters), rung
        except ConvergenceError as err:
            if rung == LADDER[-1]:
                raise
            log.warning("%s on %s: %s; again by %s", what, config.geometry, str(err).splitlines()[0], LADDER[LADDER.index(rung) + 1])


def propagation_test(case: str, sst_run, out, phll29=PHLL29, names=CANDIDATES, regularisation: float = REGULARISATION) -> dict:
    """Every candidate target of `case` frozen in our solver and scored against the LES, beside our
    SST (the run directory `sst_run` of `vcnn solve phll-rans --geometry CASE`): writes
    OUT/propagation.json, OUT/propagation.md and OUT/<candidate>/ (fields), returns the table."""
    from cases.studies.score import score_shared_case, shared_case_dir

    if case not in VALIDATION:
        raise CaseError(f"the propagation test runs on the validation cases {', '.join(VALIDATION)}, not {case!r}")
    out, case_dir = Path(out), shared_case_dir(phll29, case)
    sst, les = _sst_and_les(case, sst_run, case_dir)
    targets = candidate_targets(sst, les, names, regularisation)
    stresses = remaining_stresses(sst, les, targets)
    validation = sst.metadata.get("validation", {})
    result = {
        "case": case,
        "mesh": {"nx": sst.metadata["config"]["nx"], "ny": sst.metadata["config"]["ny"], "targets_on": "benchmark cell centres" if str(sst_run) == BENCHMARK else "our nodes"},
        "regularisation": regularisation,
        "les_reattachment": les_reattachment(case_dir),
        "sst": {
            "source": "the benchmark's SST (OpenFOAM)" if str(sst_run) == BENCHMARK else f"our SST {sst_run}",
            "score": score_shared_case(sst, case_dir, out, source=f"SST {sst_run}", velocity="velocity"),
            "reattachment": validation.get("reattachment"),
            "iterations": sst.metadata.get("statistics", {}).get("rans_iterations"),
        },
        "candidates": {},
    }
    for name, nu_t in targets.items():
        result["candidates"][name] = _candidate(sst, nu_t, name, case_dir, out, stresses.get(name))
    out.mkdir(parents=True, exist_ok=True)
    (out / "propagation.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "propagation.md").write_text(table([result]))
    return result


def _sst_and_les(case: str, sst_run, case_dir: Path):
    """(SST fields, LES fields on the same nodes): a phll-rans run directory, or the benchmark's."""
    from meshes.errors import MeshError

    if str(sst_run) == BENCHMARK:
        return benchmark_sst(case_dir), read_les(case_dir)
    try:
        sst = MeshFields.read(sst_run)
    except MeshError as err:
        raise CaseError(f"{sst_run}: {err}") from None
    if sst.metadata.get("config", {}).get("geometry") != case:
        raise CaseError(f"{sst_run} is not a phll-rans solve of {case}")
    return sst, les_on_mesh(case_dir, sst)


def _candidate(sst: MeshFields, nu_t: np.ndarray, name: str, case_dir: Path, out: Path, stress=None) -> dict:
    """One row of the propagation test: the target (and its stress) frozen, converged, scored
    (OUT/<name>/ its fields)."""
    from cases.studies.score import score_shared_case

    tic = time.perf_counter()
    try:
        fields, bubble, statistics, rung = propagate(sst, nu_t, stress)
    except Exception as err:  # a target that does not converge is a result, not a crash
        log.warning("%s on %s did not converge: %s", name, case_dir.name, err)
        return {"error": str(err).splitlines()[0], "seconds": time.perf_counter() - tic}
    fields.write(out / name)
    last = statistics["history"][-1]
    row = {
        "score": score_shared_case(fields, case_dir, out, source=f"{name} frozen", velocity="velocity"),
        "reattachment": bubble["reattachment"],
        "iterations": statistics["rans_iterations"],
        "continuation_iterations": 0 if rung == "direct" else CONTINUATION,
        "solved_by": rung,
        "final_changes": {"nu_t": last["nu_t_change"], "velocity": last["velocity_change"]},
        # the momentum residual left before the last Newton solve, relative to the first
        "residual_reduction": last["momentum_residual"] / statistics["history"][0]["momentum_residual"],
        "seconds": time.perf_counter() - tic,
        "nu_t_over_nu": {"mean": float(np.average(nu_t, weights=sst.weights) / sst.metadata["nu"]), "max": float(nu_t.max() / sst.metadata["nu"])},
    }
    log.info("%s %s: score %.4f", case_dir.name, name, row["score"])
    return row


def table(results: list[dict]) -> str:
    """The markdown table of propagation results: one row per case and candidate."""
    lines = [
        "| case | closure | score | reattachment x/H (LES) | iterations | residual reduction | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        les = _f(r["les_reattachment"], 2)
        sst = "benchmark SST" if r["mesh"].get("targets_on") == "benchmark cell centres" else "our SST"
        lines.append(f"| {r['case']} | {sst} | {_f(r['sst']['score'], 4)} | {_f(r['sst']['reattachment'], 2)} ({les}) | {r['sst']['iterations'] or '-'} | | |")
        for name, c in r["candidates"].items():
            if "error" in c:
                lines.append(f"| {r['case']} | {name} frozen | failed: {c['error']} | | | | {c['seconds']:.0f} |")
            else:
                how = f"frozen ({c.get('solved_by', 'continuation')} over {c['continuation_iterations']})" if c.get("continuation_iterations") else "frozen"
                lines.append(
                    f"| {r['case']} | {name} {how} | {_f(c['score'], 4)} | {_f(c['reattachment'], 2)} ({les}) | {c['iterations']} | {c['residual_reduction']:.1e} | {c['seconds']:.0f} |"
                )
    return "\n".join(lines) + "\n"


def _f(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
