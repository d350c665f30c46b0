"""The whole-mesh graph operator: invariant in float64 through the field pipeline, messages that
reach beyond a node's own neighbourhood (and no farther than its layers allow), training on whole
cases, and the refusals (a subset of nodes, data-parallel training, cloud-shaped inputs)."""

import numpy as np
import pytest
import torch

from meshes.fields import MeshFields
from tests.vcnn.test_symmetry import TOL, random_field
from tests.vcnn.test_train import SPEC, synthetic_case
from vcnn import checkpoint
from vcnn.clouds import Ball, KNearest, NodeIndex
from vcnn.data import GraphBatches, feature_statistics
from vcnn.errors import VcnnError
from vcnn.features import FeatureSpec
from vcnn.inference import plan_batches, predict_fields
from vcnn.nn import CloudNetConfig, ModelError, build_model
from vcnn.symmetry import check_field_model
from vcnn.train import TrainingConfig, relative_errors, train

SIZES = {"embedding": (8, 8), "kernel": (8,), "fitting": (16,)}


def whole_mesh(spec: FeatureSpec, dim: int = 2, outputs=("c", "u"), kinds=("scalar", "vector"), layers: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    config = CloudNetConfig(kind="whole_mesh", n_scalars=len(spec.scalars), n_vectors=len(spec.vectors), dim=dim, outputs=outputs,
                            output_kinds=kinds, graph_layers=layers, **SIZES)
    return build_model(config).double()


@pytest.mark.parametrize("dim, shape", [(2, KNearest(8)), (2, Ball(0.3)), (3, KNearest(10))])
def test_whole_mesh_operator_keeps_its_declared_symmetry(dim, shape):
    fields = random_field(dim, n=300)
    spec = FeatureSpec(scalars=("strain_rate", "wall_distance", "speed", "proximity", "upwind_proximity", "node_weight"))
    model = whole_mesh(spec, dim)
    periods = np.array([[3.0] + [0.0] * (dim - 1)])

    def predict(f, p):
        return predict_fields(model, f, shape, spec, periods=p, dtype=torch.float64)

    report = check_field_model(predict, fields, {"c": "scalar", "u": "vector"}, periods=periods, trials=2)
    print(dim, shape, report.deviations)
    assert report.worst() < TOL
    assert np.abs(predict(fields, periods)["u"]).max() > 1e-3  # the vector output is not trivially zero


def test_messages_reach_as_far_as_the_layers_and_no_farther():
    """With one message layer a node reads the clouds of its cloud's members: a change two clouds
    away (outside its own cloud) reaches it through the messages, one three clouds away does not."""
    fields = random_field(2, n=300)
    spec, shape = FeatureSpec(), KNearest(6)
    cloud = NodeIndex(fields.points).clouds(fields.points, shape).members.reshape(-1, 6)  # the 6 nearest of each node
    node = 0
    own = set(cloud[node])
    two = {m for j in own for m in cloud[j]} - own
    three = set(range(fields.num_nodes)) - own - two
    model = whole_mesh(spec, layers=1)
    before = predict_fields(model, fields, shape, spec, dtype=torch.float64)["c"][node]
    for far, reaches in ((min(two), True), (min(three), False)):
        strain = fields["strain_rate"].copy()
        strain[far] += 1.0
        changed = MeshFields(fields.points, fields.cells, fields.cell_type, fields.weights, {**fields.point_data, "strain_rate": strain})
        after = predict_fields(model, changed, shape, spec, dtype=torch.float64)["c"][node]
        assert (abs(after - before) > 1e-8) == reaches, (far, after - before)


def test_whole_mesh_operator_trains_on_whole_cases(tmp_path):
    training = GraphBatches([synthetic_case("a", 0.3, 0), synthetic_case("b", 0.5, 1)], KNearest(8), SPEC, ("concentration",))
    assert len(training) == 2
    batches = list(training.epoch(0))
    assert [len(b.targets) for b in batches] == [250, 250] and batches[0].edges.shape == (2, 250 * 8)
    validation = [synthetic_case("v", 0.4, 2)]
    torch.manual_seed(0)
    model = build_model(CloudNetConfig(kind="whole_mesh", n_scalars=len(SPEC.scalars), outputs=("concentration",), **SIZES))
    model.set_normalization(feature_statistics(training))
    config = TrainingConfig(epochs=40, learning_rate=1e-2, patience=50, device="cpu")
    extra = checkpoint.data_config({"shape": "knn", "k": 8}, SPEC, ("concentration",))
    history = train(model, training, validation, config, tmp_path, progress=False, extra=extra)
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    trained = checkpoint.load_trained(tmp_path / "best.pt")
    assert trained.model.whole_mesh
    again = relative_errors(trained.model, validation, trained.shape, trained.spec, "cpu")["v"]["concentration"]
    assert again == pytest.approx(min(h["validation_rel_l2"] for h in history), rel=1e-6)
    with pytest.raises(VcnnError, match="one process"):
        next(training.epoch(0, world=2))


def test_whole_mesh_refusals():
    fields = random_field(2, n=100)
    spec = FeatureSpec()
    model = whole_mesh(spec)
    with pytest.raises(VcnnError, match="subset of nodes"):
        plan_batches(model, fields.points, NodeIndex(fields.points), KNearest(6), queries=np.arange(10))
    with pytest.raises(ModelError, match="flat edge rows"):
        model(torch.zeros(4, 10, 2, 2, dtype=torch.float64), torch.zeros(4, 10, 5, dtype=torch.float64), torch.full((4, 10), 0.1, dtype=torch.float64))
    with pytest.raises(ModelError, match="graph must be"):
        CloudNetConfig(kind="whole_mesh", graph="mesh")
