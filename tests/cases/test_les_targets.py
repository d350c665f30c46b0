"""cases.studies.les_targets: the optimal eddy viscosity on manufactured fields, its regularisation,
and (slow) the propagation test end to end on a validation hill."""

import json
from pathlib import Path

import numpy as np
import pytest

from cases.errors import CaseError
from cases.studies.les_targets import anisotropic_stress, candidate_targets, optimal_eddy_viscosity, remaining_stresses, strain_tensor
from meshes.fields import MeshFields

ROOT = Path(__file__).resolve().parents[2]
NU = 1.3e-3
RATE = 2.0


def box(nx=9, ny=7, rotation=None):
    x, y = np.meshgrid(np.linspace(0, 3, nx), np.linspace(0, 2, ny))
    points = np.c_[x.ravel(), y.ravel()]
    if rotation is not None:
        points = points @ rotation.T
    index = np.arange(nx * ny).reshape(ny, nx)
    quads = np.stack([index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]], -1).reshape(-1, 4)
    return MeshFields(points, quads, "quad")


def shear_stress(n, nu_t, k=0.4):
    """<u'u'> of the Boussinesq model in the shear flow u = (RATE y, 0): -2 nu_t S + (2/3) k I."""
    tau = np.tile((2.0 / 3.0) * k * np.eye(2), (n, 1, 1))
    tau[:, 0, 1] = tau[:, 1, 0] = -nu_t * RATE
    return tau, np.full(n, k)


def test_pure_shear_gives_back_the_eddy_viscosity_of_its_stress():
    mesh = box()
    strain = strain_tensor(mesh, np.c_[RATE * mesh.points[:, 1], np.zeros(mesh.num_nodes)])
    assert np.allclose(strain[:, 0, 1], RATE / 2) and np.allclose(strain[:, 0, 0], 0.0)
    a = anisotropic_stress(*shear_stress(mesh.num_nodes, NU))
    assert np.allclose(optimal_eddy_viscosity(a, strain, prior=np.zeros(mesh.num_nodes), regularisation=0.0), NU)
    # the prior pulls only where the strain is weak: a prior equal to the answer changes nothing
    assert np.allclose(optimal_eddy_viscosity(a, strain, prior=np.full(mesh.num_nodes, NU), regularisation=0.5), NU)
    # a uniform strain with a zero prior: shrunk by S:S / (S:S + s0) = 1 / 1.01
    assert np.allclose(optimal_eddy_viscosity(a, strain, prior=np.zeros(mesh.num_nodes)), NU / 1.01)


def test_stress_orthogonal_to_the_strain_or_of_the_wrong_sign_gives_zero():
    mesh = box()
    strain = strain_tensor(mesh, np.c_[RATE * mesh.points[:, 1], np.zeros(mesh.num_nodes)])
    orthogonal = np.tile(np.diag([0.3, -0.3]), (mesh.num_nodes, 1, 1))  # a : S = 0
    assert np.allclose(optimal_eddy_viscosity(orthogonal, strain, prior=np.zeros(mesh.num_nodes)), 0.0)
    backscatter = anisotropic_stress(*shear_stress(mesh.num_nodes, -NU))  # a = +2 nu S
    assert np.all(optimal_eddy_viscosity(backscatter, strain, prior=np.zeros(mesh.num_nodes)) == 0.0)


def test_no_division_by_zero_where_the_strain_vanishes():
    mesh = box(nx=13, ny=13)
    y = mesh.points[:, 1]
    velocity = np.c_[RATE * np.maximum(y - 1.0, 0.0), np.zeros(mesh.num_nodes)]  # still fluid below y = 1
    strain = strain_tensor(mesh, velocity)
    still = y < 0.8
    assert np.all(strain[still] == 0.0)
    prior = np.full(mesh.num_nodes, 7 * NU)
    nu_t = optimal_eddy_viscosity(anisotropic_stress(*shear_stress(mesh.num_nodes, NU)), strain, prior)
    assert np.all(np.isfinite(nu_t))
    assert np.allclose(nu_t[still], 7 * NU)  # no strain: the prior
    assert np.allclose(nu_t[y > 1.2], NU, rtol=0.05)  # strong strain: the fit
    with pytest.raises(CaseError, match="vanishes everywhere"):
        optimal_eddy_viscosity(np.zeros((3, 2, 2)), np.zeros((3, 2, 2)), np.zeros(3))


def test_the_target_does_not_depend_on_the_frame():
    turn = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])
    rng = np.random.default_rng(1)
    mesh, turned = box(), box(rotation=turn)
    velocity = rng.normal(size=(mesh.num_nodes, 2))
    tau = rng.normal(size=(mesh.num_nodes, 2, 2))
    tau = tau + tau.transpose(0, 2, 1)
    k = rng.uniform(0.1, 1.0, mesh.num_nodes)
    prior = rng.uniform(0, NU, mesh.num_nodes)
    here = optimal_eddy_viscosity(anisotropic_stress(tau, k), strain_tensor(mesh, velocity), prior)
    there = optimal_eddy_viscosity(anisotropic_stress(turn @ tau @ turn.T, k), strain_tensor(turned, velocity @ turn.T), prior)
    assert np.allclose(here, there, rtol=1e-10, atol=1e-14)


def test_the_force_candidates_freeze_what_their_eddy_viscosity_leaves_of_the_les_stress():
    """les_stress_force: nu_t = 0 and the whole of a; optimal_les_strain_plus_force: nu_t* and
    a + 2 nu_t* S, which with no regularisation is orthogonal to S (the least-squares remainder)."""
    rng = np.random.default_rng(2)
    mesh = box()
    velocity = rng.normal(size=(mesh.num_nodes, 2))
    tau = rng.normal(size=(mesh.num_nodes, 2, 2))
    tau, k = tau + tau.transpose(0, 2, 1), rng.uniform(0.1, 1.0, mesh.num_nodes)
    sst = MeshFields(mesh.points, mesh.cells, "quad", None, {"nu_t": np.full(mesh.num_nodes, NU)})
    les = MeshFields(mesh.points, mesh.cells, "quad", None, {"U_LES": velocity, "k_LES": k, "tauij_LES": tau})
    names = ["optimal_les_strain", "optimal_les_strain_plus_force", "les_stress_force"]
    targets = candidate_targets(sst, les, names, regularisation=0.0)
    stresses = remaining_stresses(sst, les, targets)
    a, strain = anisotropic_stress(tau, k), strain_tensor(mesh, velocity)
    assert sorted(stresses) == sorted(names[1:]) and np.all(targets["les_stress_force"] == 0.0)
    assert np.array_equal(stresses["les_stress_force"], a)
    assert np.array_equal(targets["optimal_les_strain_plus_force"], targets["optimal_les_strain"])
    fitted = targets["optimal_les_strain"] > 0  # where the fit is not clipped at zero
    assert 0 < fitted.sum() < mesh.num_nodes
    remainder = np.einsum("nij,nij->n", stresses["optimal_les_strain_plus_force"], strain)
    assert np.allclose(remainder[fitted], 0.0, atol=1e-12 * np.abs(np.einsum("nij,nij->n", a, strain)).max())


def test_an_unknown_target_is_one_clear_error():
    with pytest.raises(CaseError, match="unknown target"):
        candidate_targets(box(), box(), names=["optimal", "sst"])


@pytest.mark.slow
def test_propagation_on_a_validation_hill(tmp_path, reference_dir):
    """Our SST on a coarse mesh, then its own nu_t frozen (must give back its score) and the
    optimal eddy viscosity of the LES (must converge and beat SST: measured at 96 cells across)."""
    pytest.importorskip("closure_challenge")
    from tests.cases.test_cli import vcnn

    case = "alpha_15_7929_4048"
    sst = tmp_path / "sst"
    result = vcnn("solve", "phll-rans", "--geometry", case, "--resolution", "48x48", "--start-model", "rest", "--no-figures", "-q", "--out", sst)
    assert result.returncode == 0, result.stderr[-2000:]
    result = vcnn("propagate", "--case", case, "--sst", sst, "--out", tmp_path / "prop",
                  "--phll29", reference_dir / "closure_challenge" / "PHLL29", "--targets", "sst", "optimal_les_strain")
    assert result.returncode == 0, result.stderr[-2000:]
    table = json.loads((tmp_path / "prop" / "propagation.json").read_text())
    sst_score, candidates = table["sst"]["score"], table["candidates"]
    assert candidates["sst"]["score"] == pytest.approx(sst_score, abs=1e-4)
    assert candidates["optimal_les_strain"]["residual_reduction"] < 1e-6
    assert candidates["optimal_les_strain"]["score"] < sst_score


def test_test_cases_are_refused_before_any_work(tmp_path):
    from cases.studies.les_targets import propagation_test

    with pytest.raises(CaseError, match="validation cases"):
        propagation_test("alpha_15_13929_4048", tmp_path / "no-run", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_frozen_target_is_solved_by_the_first_rung_that_converges(monkeypatch):
    """`solve_frozen`: straight from the SST state, then the hand-over, then the hand-over in
    pseudo-time steps, each only where the one before failed; the last failure is raised."""
    import dataclasses

    from cases.flows import phll_rans
    from cases.studies import les_targets
    from solvers.errors import ConvergenceError, RansFailure

    @dataclasses.dataclass
    class Parameters:
        dt: float = 0.05
        dt_max: float = 1e300
        momentum_pseudo_time: bool = False

    config = dataclasses.make_dataclass("Config", [("geometry", str), ("rans_parameters", Parameters)])("alpha_05_10071_2024", Parameters())
    tried = []
    monkeypatch.setattr(les_targets, "frozen_closure", lambda sst, nu_t, blend, stress: blend)

    def solve(config, comm, msh_path, blend, parameters=None):
        tried.append((blend, parameters))
        if parameters is None or len(tried) > limit:
            raise RansFailure("diverged", [{}], None)
        return "solution"

    monkeypatch.setattr(phll_rans, "solve", solve)
    limit = 3
    assert les_targets.solve_frozen(config, None, None) == ("solution", "pseudo-time continuation")
    (first, none), (second, still_none), (third, stepped) = tried
    assert (first, second, third) == (0, les_targets.CONTINUATION, les_targets.CONTINUATION) and none is still_none is None
    assert stepped == Parameters(phll_rans.CONTINUED_DT, phll_rans.CONTINUED_DT_MAX, True)
    tried.clear()
    limit = 0
    with pytest.raises(ConvergenceError):
        les_targets.solve_frozen(config, None, None)
    assert len(tried) == 3
