"""Vector and tensor outputs: the vector-cloud network's equivariant heads (coefficients of L's
rows, Ma & Chan unitary layers, L*^T C L*) pass the checker in float64 in 2-D and 3-D, at the
network and at the field level; raw components are caught; vector targets train end to end."""

import numpy as np
import pytest
import torch

from meshes.fields import MeshFields
from tests.vcnn.test_symmetry import random_field
from tests.vcnn.test_train import SPEC, synthetic_case
from vcnn.clouds import Ball, Ellipse
from vcnn.data import CloudBatches, feature_statistics
from vcnn.errors import VcnnError
from vcnn.features import FeatureSpec
from vcnn.inference import predict_fields, relative_l2
from vcnn.nn.layers import UnitaryVectorHead
from vcnn.nn import CloudNetConfig, ModelError, build_model
from vcnn.symmetry import TOLERANCE, check_cloud_model, check_field_model, random_orthogonal
from vcnn.train import TrainingConfig, train

OUTPUTS = {"c": "scalar", "flux": "vector", "stress": "tensor"}


def equivariant_model(dim: int, n_scalars: int = 5, vector_head=(), kind="vector_cloud", outputs=OUTPUTS):
    torch.manual_seed(1)
    config = CloudNetConfig(
        kind=kind, n_scalars=n_scalars, dim=dim, embedding=(16, 16), m_prime=3, fitting=(32,),
        outputs=tuple(outputs), output_kinds=tuple(outputs.values()), vector_head=vector_head, invariant_norm=True,
    )
    return build_model(config).double()


def random_clouds(dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = rng.random((6, 25))
    return rng.normal(size=(6, 25, 2, dim)), rng.normal(size=(6, 25, 5)), weights / weights.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("kind, vector_head", [("vector_cloud", ()), ("vector_cloud", (8, 8)), ("message_passing", ())])
@pytest.mark.parametrize("dim", [2, 3])
def test_vector_and_tensor_outputs_are_equivariant(dim, kind, vector_head):
    outputs = OUTPUTS if kind == "vector_cloud" else {"c": "scalar", "flux": "vector"}
    model = equivariant_model(dim, vector_head=vector_head, kind=kind, outputs=outputs)
    vectors, scalars, weights = random_clouds(dim)
    report = check_cloud_model(model, vectors, scalars, weights)
    assert report.worst() < TOLERANCE, report.deviations
    out = model.split(model(*(torch.from_numpy(a) for a in (vectors, scalars, weights))))
    assert out["flux"].shape == (6, dim)
    assert out["flux"].norm(dim=1).min() > 1e-3  # not trivially zero
    if "stress" in outputs:
        assert out["stress"].shape == (6, dim, dim)
        assert torch.allclose(out["stress"], out["stress"].transpose(1, 2))  # symmetric
        assert out["stress"].std(0).max() > 1e-3  # varies between clouds


@pytest.mark.parametrize("dim", [2, 3])
def test_field_pipeline_with_equivariant_outputs(dim):
    fields = random_field(dim)
    spec = FeatureSpec()
    model = equivariant_model(dim, vector_head=(8,))
    shape = Ellipse() if dim == 2 else Ball(0.35)
    periods = np.array([[3.0] + [0.0] * (dim - 1)])

    def predict(f, p):
        return predict_fields(model, f, shape, spec, periods=p, dtype=torch.float64)

    report = check_field_model(predict, fields, model.symmetry["outputs"], periods=periods)
    assert report.worst() < TOLERANCE, report.deviations


def test_raw_components_are_caught_by_the_checker():
    model = equivariant_model(2, kind="raw_cloud")
    report = check_cloud_model(model, *random_clouds(2))
    assert report.deviations["rotation"] > 1e-3 and report.deviations["reflection"] > 1e-3
    assert report.deviations["permutation"] < TOLERANCE


def test_unitary_vector_layers_commute_with_rotations_and_reflections():
    torch.manual_seed(0)
    head = UnitaryVectorHead((5, 7, 3)).double()
    x = torch.randn(4, 5, 3, dtype=torch.float64)
    for reflect in (False, True):
        rotation = torch.from_numpy(random_orthogonal(3, np.random.default_rng(1), reflect))
        assert torch.allclose(head(x @ rotation.T), head(x) @ rotation.T, rtol=0, atol=1e-12)


def test_bad_output_declarations_are_refused():
    with pytest.raises(ModelError, match="output_kinds"):
        CloudNetConfig(outputs=("a", "b"), output_kinds=("scalar",))
    with pytest.raises(ModelError, match="output_kinds"):
        CloudNetConfig(outputs=("a",), output_kinds=("spinor",))
    with pytest.raises(ModelError, match="scalar outputs only"):
        CloudNetConfig(kind="local_mlp", outputs=("v",), output_kinds=("vector",))
    with pytest.raises(ModelError, match="scalar and vector outputs only"):
        CloudNetConfig(kind="message_passing", outputs=("T",), output_kinds=("tensor",))


def with_vector_target(case):
    """A nonlocal vector target: the strain rate times the velocity, smoothed by the flow."""
    f = case.fields
    data = dict(f.point_data, flux=f["strain_rate"][:, None] * f["velocity"])
    return type(case)(case.name, MeshFields(f.points, f.cells, point_data=data, metadata=f.metadata))


def test_vector_targets_train_end_to_end(tmp_path):
    cases = [with_vector_target(synthetic_case(n, a, s)) for n, a, s in (("a", 0.3, 0), ("b", 0.5, 1))]
    validation = [with_vector_target(synthetic_case("v", 0.4, 2))]
    training = CloudBatches(cases, Ellipse(), SPEC, ("concentration", "flux"), 64, 30)
    assert training.target_kinds == ("scalar", "vector")
    config = CloudNetConfig(n_scalars=4, embedding=(8, 16), m_prime=2, fitting=(16,), outputs=("concentration", "flux"), output_kinds=("scalar", "vector"))
    torch.manual_seed(0)
    model = build_model(config)
    statistics = feature_statistics(training)
    assert statistics["output_mean"][1:] == [0.0, 0.0]  # a vector is not shifted
    assert statistics["output_std"][1] == statistics["output_std"][2]  # one scale for both components
    model.set_normalization(statistics)
    history = train(model, training, validation, TrainingConfig(epochs=12, batch_size=64, n_points=30, learning_rate=1e-2, device="cpu"), tmp_path, progress=False)
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    errors = relative_l2(validation[0].fields, predict_fields(model, validation[0].fields, Ellipse(), SPEC, validation[0].periods))
    assert set(errors) == {"concentration", "flux"} and errors["flux"] < 0.5

    scalar_only = build_model(CloudNetConfig(n_scalars=4, embedding=(8, 16), m_prime=2, fitting=(16,), outputs=("concentration", "flux")))
    with pytest.raises(VcnnError, match="do not match the training targets"):
        train(scalar_only, training, validation, TrainingConfig(epochs=1, device="cpu"), tmp_path / "bad", progress=False)


def test_relative_l2_of_vectors_uses_their_length():
    case = with_vector_target(synthetic_case("a", 0.3, 0))
    flux = case.fields["flux"]
    turned = flux @ np.array([[0.0, -1.0], [1.0, 0.0]]).T  # same lengths, turned 90 degrees
    assert relative_l2(case.fields, {"flux": turned})["flux"] == pytest.approx(np.sqrt(2))  # |Rv - v| = sqrt(2) |v|
    assert relative_l2(case.fields, {"flux": 2 * flux})["flux"] == pytest.approx(1.0)
