"""`vcnn.closure`: the eddy-viscosity target and its admissible inverse, and `NeuralClosure` on node
arrays: frame and Galilean invariance of the whole pipeline, checkpoints of the wrong kind refused."""

import dataclasses

import numpy as np
import pytest
import torch

from vcnn.checkpoint import save
from vcnn.closure import BASIS, INVERSES, LOG_RATIO, RATIO, STRESS, NeuralClosure, closure_targets, eddy_viscosity, log_ratio
from vcnn.errors import VcnnError
from vcnn.features import FeatureSpec
from vcnn.nn import CloudNetConfig, build_model
from vcnn.symmetry import check_field_model
from tests.vcnn.test_symmetry import random_field

NU = 1e-3
SPEC = FeatureSpec(vectors=("position", "relative_velocity"), scalars=("strain_rate", "wall_distance", "relative_speed", "proximity"))


def checkpoint(path, spec=SPEC, targets=(LOG_RATIO,), kinds=(), **extra):
    torch.manual_seed(0)
    config = CloudNetConfig(n_scalars=len(spec.scalars), n_vectors=len(spec.vectors), embedding=(16, 16), m_prime=4, fitting=(32,), outputs=targets, output_kinds=kinds)
    model = build_model(config)
    return save(path, model, cloud={"shape": "ball", "radius": 0.4}, features=dataclasses.asdict(spec), targets=list(targets), **extra)


def flow(seed=0):
    fields = random_field(2, seed=seed)
    fields.metadata.update(nu=NU, periods=[[3.0, 0.0]])
    return fields


def test_the_target_round_trips_and_its_inverse_is_admissible():
    nu_t = np.array([0.0, 1e-6, 1e-3, 0.5])
    assert np.allclose(eddy_viscosity(log_ratio(nu_t, NU), NU), nu_t, rtol=1e-12, atol=0)
    assert np.all(eddy_viscosity(np.array([-3.0, -1e-9, 0.0]), NU) == 0.0)
    assert np.allclose(INVERSES[RATIO](np.array([-1.0, 0.0, 2.0]), NU), [0.0, 0.0, 2 * NU])
    fields = flow()
    fields.point_data["nu_t"] = np.full(fields.num_nodes, NU)
    targets = closure_targets(fields)
    assert np.allclose(targets[LOG_RATIO], np.log(2.0)) and np.allclose(targets[RATIO], 1.0)


def test_neural_closure_is_invariant_to_the_frame_and_to_galilean_boosts(tmp_path):
    closure = NeuralClosure(checkpoint(tmp_path / "c.pt"))
    fields = flow()
    nu_t = closure(fields)["nu_t"]
    assert nu_t.shape == (fields.num_nodes,) and nu_t.min() >= 0 and nu_t.max() > 0

    def predict(f, periods):
        f.metadata["periods"] = periods.tolist()
        return closure(f)

    report = check_field_model(predict, fields, {"nu_t": "scalar"}, np.array([[3.0, 0.0]]), trials=2)
    assert max(report.deviations.values()) < 1e-12, report.deviations
    boosted = flow()
    boosted.point_data["velocity"] = boosted["velocity"] + np.array([5.0, -2.0])
    assert np.allclose(closure(boosted)["nu_t"], nu_t, rtol=1e-12, atol=0)


@pytest.mark.parametrize("stress, kind", [(STRESS, "tensor"), (BASIS, "scalar")])  # a tensor output, or a scalar times SW - WS
def test_a_remaining_stress_turns_with_the_frame_and_nu_t_does_not(tmp_path, stress, kind):
    closure = NeuralClosure(checkpoint(tmp_path / "s.pt", targets=(RATIO, stress), kinds=("scalar", kind)))
    assert closure.names == ("nu_t", "stress")
    fields = flow()
    out = closure(fields)
    assert out["stress"].shape == (fields.num_nodes, 2, 2) and np.abs(out["stress"]).max() > 0
    if stress == BASIS:  # the checkpoint's basis damping is the one applied
        from meshes.gradients import node_gradients

        damped = NeuralClosure(checkpoint(tmp_path / "d.pt", targets=(RATIO, stress), kinds=("scalar", kind), basis_damping=0.5))(fields)
        grad = node_gradients(fields, fields["velocity"])
        size = np.einsum("nij,nij->n", grad, grad)
        assert np.allclose(damped["stress"], out["stress"] * (size / (size + 0.5 * np.median(size)))[:, None, None], rtol=1e-10, atol=1e-14)
        assert np.abs(damped["stress"]).max() < np.abs(out["stress"]).max()

    def predict(f, periods):
        f.metadata["periods"] = periods.tolist()
        return closure(f)

    report = check_field_model(predict, fields, {"nu_t": "scalar", "stress": "tensor"}, np.array([[3.0, 0.0]]), trials=2)
    assert max(report.deviations.values()) < 1e-12, report.deviations
    with pytest.raises(VcnnError, match="not one closure target"):
        NeuralClosure(checkpoint(tmp_path / "c.pt", targets=(RATIO, "concentration")))


def test_the_stress_basis_is_bounded_traceless_and_orthogonal_to_the_strain():
    from meshes.gradients import node_gradients
    from vcnn.closure import stress_basis

    fields = flow()
    basis = stress_basis(fields)
    grad = node_gradients(fields, fields["velocity"])
    strain = 0.5 * (grad + grad.transpose(0, 2, 1))
    strain -= 0.5 * np.trace(strain, axis1=1, axis2=2)[:, None, None] * np.eye(2)
    assert np.allclose(basis, basis.transpose(0, 2, 1)) and np.allclose(np.trace(basis, axis1=1, axis2=2), 0.0)
    assert np.allclose(np.einsum("nij,nij->n", basis, strain), 0.0, atol=1e-12 * np.abs(strain).max())
    assert np.einsum("nij,nij->n", basis, basis).max() <= 0.5 + 1e-12
    # damped: the same direction, smaller where S:S + W:W is small against its median, and no larger anywhere
    size = np.einsum("nij,nij->n", grad, grad)  # = S:S + W:W
    damped = stress_basis(fields, damping=1.0)
    factor = size / (size + np.median(size))
    assert np.allclose(damped, factor[:, None, None] * basis, atol=1e-14)
    weak = size < 0.1 * np.median(size)
    assert weak.any() and np.all(np.abs(damped[weak]) <= 0.1 * np.abs(basis[weak]) + 1e-14)
    with pytest.raises(VcnnError, match="damping"):
        stress_basis(fields, damping=-1.0)


def test_absolute_velocities_break_galilean_invariance(tmp_path):
    """The boost check above can fail: with the velocity itself as a feature it does. (The hills
    closure reads it as the velocity relative to the walls, which move with a Galilean boost.)"""
    spec = dataclasses.replace(SPEC, vectors=("position", "velocity"))
    closure = NeuralClosure(checkpoint(tmp_path / "v.pt", spec))
    fields, boosted = flow(), flow()
    boosted.point_data["velocity"] = boosted["velocity"] + np.array([5.0, -2.0])
    a, b = closure(fields)["nu_t"], closure(boosted)["nu_t"]
    assert np.linalg.norm(a - b) > 1e-3 * np.linalg.norm(a)


def test_the_node_tree_is_built_once_per_mesh(tmp_path):
    closure = NeuralClosure(checkpoint(tmp_path / "c.pt"))
    fields = flow()
    closure(fields)
    first = closure._index
    fields.point_data["velocity"] = 2 * fields["velocity"]
    closure(fields)
    assert closure._index is first and closure.timings["calls"] == 2
    assert closure.timings["clouds"] > 0 and closure.timings["network"] > 0
    fields.metadata["periods"] = [[6.0, 0.0]]  # same nodes, another period: other clouds
    closure(fields)
    assert closure._index is not first
    second = closure._index
    closure(flow(seed=1))
    assert closure._index is not second


def test_wrong_checkpoints_and_fields_are_refused(tmp_path):
    with pytest.raises(VcnnError, match="not one closure target"):
        NeuralClosure(checkpoint(tmp_path / "c.pt", targets=("concentration",)))
    closure = NeuralClosure(checkpoint(tmp_path / "ok.pt"))
    fields = flow()
    del fields.metadata["nu"]
    with pytest.raises(VcnnError, match="no viscosity"):
        closure(fields)
