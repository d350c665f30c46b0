"""Fast inference in the RANS loop (`vcnn.inference.plan_batches`, `vcnn.closure.NeuralClosure`):
clouds kept per mesh give the predictions a fresh search gives, bit for bit; batches cover every
node once, by cloud size; float32 stays within a stated tolerance of float64, frame invariance
included; "mixed" switches to float64 once the flow has settled."""

import dataclasses

import numpy as np
import pytest
import torch

from tests.vcnn.test_closure import SPEC, checkpoint, flow
from vcnn.checkpoint import save
from vcnn.closure import INVERSES, LOG_RATIO, RATIO, SETTLED, NeuralClosure, clipped
from vcnn.clouds import Ball, NodeIndex
from vcnn.errors import VcnnError
from vcnn.inference import plan_batches, predict_fields
from vcnn.nn import CloudNetConfig, build_model
from vcnn.symmetry import check_field_model

FLOAT32 = 1e-5
"""Relative deviation allowed in float32 (rounding of 6e-8 per operation through a few hundred
members and three layers), for the frame checks and float32 against float64; float64 keeps the
checker's 1e-10. Measured: 7.3e-8 against float64, 1.4e-7 turned, reflected or permuted."""


def fresh(closure: NeuralClosure, fields) -> np.ndarray:
    """nu_t from the clouds searched again, as without any kept state (float64)."""
    periods = np.asarray(fields.metadata["periods"], dtype=float)
    predicted = predict_fields(closure.model, fields, closure.shape, closure.spec, periods, dtype=torch.float64)
    return INVERSES[closure.target](predicted[closure.target], fields.metadata["nu"])


def test_batches_hold_every_node_once_sorted_by_cloud_size():
    fields = flow()
    model = build_model(CloudNetConfig(n_scalars=4, embedding=(16, 16), fitting=(32,)))
    index = NodeIndex(fields.points, np.array([[3.0, 0.0]]))
    batches = plan_batches(model, fields.points, index, Ball(0.4), batch_size=150, group=32)
    nodes = np.concatenate([b.nodes for b in batches])
    assert np.array_equal(np.sort(nodes), np.arange(fields.num_nodes))
    assert all(len(b.nodes) <= 32 for b in batches)
    whole = index.clouds(fields.points, Ball(0.4))
    for batch in batches:
        assert np.array_equal(batch.clouds.sizes, whole.sizes[batch.nodes])
        assert np.all(np.diff(batch.clouds.sizes) >= 0)  # within a search, sorted: little padding
    limited = plan_batches(model, fields.points, index, Ball(0.4), max_elements=16 * 40)
    assert all(len(b.nodes) * model.elements_per_cloud(int(b.clouds.sizes.max())) <= 16 * 40 or len(b.nodes) == 1 for b in limited)
    on_a_gpu = plan_batches(model, fields.points, index, Ball(0.4), batch_size=150, device="cuda")  # planned, not run, there
    assert [len(b.nodes) for b in on_a_gpu] == [150] * (fields.num_nodes // 150) + [fields.num_nodes % 150] * (fields.num_nodes % 150 > 0)


def test_kept_clouds_give_the_fresh_predictions_bit_for_bit(tmp_path):
    closure = NeuralClosure(checkpoint(tmp_path / "c.pt"))  # ball clouds, float64
    fields = flow()
    first = closure(fields)["nu_t"]
    kept = closure._batches
    assert kept is not None
    fields.point_data["velocity"] = 1.7 * fields["velocity"] + 0.1  # another flow, the same mesh
    second = closure(fields)["nu_t"]
    assert closure._batches is kept  # searched once
    copies = [batch.copies[torch.device("cpu")] for batch in kept]  # the clouds as tensors, copied once
    assert np.array_equal(second, fresh(closure, fields))
    closure(fields)
    assert all(batch.copies[torch.device("cpu")] is copy for batch, copy in zip(kept, copies))
    assert not np.allclose(first, second) and second.max() > 0


def test_ellipse_clouds_are_searched_again_at_every_call(tmp_path):
    spec = SPEC
    torch.manual_seed(0)
    config = CloudNetConfig(n_scalars=len(spec.scalars), n_vectors=len(spec.vectors), embedding=(16, 16), fitting=(32,), outputs=(LOG_RATIO,))
    path = save(tmp_path / "e.pt", build_model(config), cloud={"shape": "ellipse"}, features=dataclasses.asdict(spec), targets=[LOG_RATIO])
    closure = NeuralClosure(path)
    fields = flow()
    closure(fields)
    assert closure._batches is None
    fields.point_data["velocity"] = 3.0 * fields["velocity"]  # longer ellipses: other members
    assert np.array_equal(closure(fields)["nu_t"], fresh(closure, fields))


def test_float32_stays_within_its_tolerance_of_float64_and_is_frame_invariant(tmp_path):
    path = checkpoint(tmp_path / "c.pt")
    single, double = NeuralClosure(path, dtype="float32"), NeuralClosure(path)
    fields = flow()
    a, b = single(fields)["nu_t"], double(fields)["nu_t"]
    difference = np.linalg.norm(a - b) / np.linalg.norm(b)
    print("float32 against float64:", difference)
    assert 0 < difference < FLOAT32

    def predict(f, periods):
        f.metadata["periods"] = periods.tolist()
        return single(f)

    report = check_field_model(predict, flow(), {"nu_t": "scalar"}, np.array([[3.0, 0.0]]), trials=2)
    print("float32 frame checks:", report.deviations)
    assert max(report.deviations.values()) < FLOAT32


def test_mixed_precision_turns_to_float64_once_the_flow_has_settled(tmp_path):
    path = checkpoint(tmp_path / "c.pt")
    mixed, double = NeuralClosure(path, dtype="mixed"), NeuralClosure(path)
    fields = flow()
    first = mixed(fields)["nu_t"]
    assert mixed.timings["float64_calls"] == 0 and not np.array_equal(first, double(fields)["nu_t"])
    fields.point_data["velocity"] = fields["velocity"] * (1 + 0.1 * SETTLED)  # moved less than SETTLED
    assert np.array_equal(mixed(fields)["nu_t"], double(fields)["nu_t"])
    fields.point_data["velocity"] = fields["velocity"] * 1.01  # moved again: float32
    mixed(fields)
    assert mixed.timings == {**mixed.timings, "calls": 3, "float64_calls": 1}
    with pytest.raises(VcnnError, match="unknown precision 'half'"):
        NeuralClosure(path, dtype="half")



def test_a_subset_of_nodes_gets_the_whole_fields_values_and_sums_are_combined(tmp_path):
    """What one MPI rank does: its own nodes evaluated, the others read as cloud members only; the
    "mixed" switch judged on the sums over every rank's nodes (`total`), not on its own alone."""
    path = checkpoint(tmp_path / "c.pt")  # ball clouds
    fields = flow()
    whole = NeuralClosure(path)(fields)["nu_t"]
    nodes = np.flatnonzero(fields.points[:, 0] < 1.2)
    part = NeuralClosure(path)
    # (to rounding: other batches, padded otherwise)
    assert part.reach == 0.4 and np.allclose(part(fields, nodes=nodes)["nu_t"], whole[nodes], rtol=1e-12, atol=0)
    assert np.allclose(part(fields, nodes=nodes[::2])["nu_t"], whole[nodes[::2]], rtol=1e-12, atol=0)  # planned again

    mixed, rest = NeuralClosure(path, dtype="mixed"), np.setdiff1d(np.arange(fields.num_nodes), nodes)
    velocity = fields["velocity"].copy()

    def others(moved):  # the sums of the other rank, whose nodes moved by `moved`
        return lambda sums: sums + np.array([np.sum((moved * velocity[rest]) ** 2), np.sum(((1 + moved) * velocity[rest]) ** 2)])

    mixed(fields, nodes=nodes, total=others(0.0))
    fields.point_data["velocity"] = velocity * np.where(fields.points[:, 0] < 1.2, 1.0, 1.01)[:, None]
    mixed(fields, nodes=nodes, total=others(0.01))  # these nodes did not move, the others did
    assert mixed.timings["float64_calls"] == 0


def test_a_network_that_reads_beyond_a_radius_refuses_a_subset(tmp_path):
    spec = SPEC
    config = CloudNetConfig(n_scalars=len(spec.scalars), n_vectors=len(spec.vectors), embedding=(16, 16), fitting=(32,), outputs=(LOG_RATIO,))
    path = save(tmp_path / "k.pt", build_model(config), cloud={"shape": "knn", "k": 8}, features=dataclasses.asdict(spec), targets=[LOG_RATIO])
    closure = NeuralClosure(path)
    assert closure.reach is None
    with pytest.raises(VcnnError, match="cannot evaluate a subset"):
        closure(flow(), nodes=np.arange(3))


def test_the_clip_rounded_over_a_width_lies_within_width_log_2_above_the_hard_clip():
    q = np.array([-1.0, -0.05, 0.0, 0.01, 0.5, 3.0, np.nan])
    hard, soft = clipped(q), clipped(q, 0.05)
    assert np.array_equal(hard[:-1], np.maximum(q[:-1], 0.0)) and np.isnan(soft[-1])
    assert np.all(soft[:-1] >= hard[:-1]) and np.all(soft[:4] > hard[:4]) and np.all(soft[:-1] - hard[:-1] <= 0.05 * np.log(2) + 1e-15)
    assert soft[2] == pytest.approx(0.05 * np.log(2)) and soft[0] < 1e-9 and soft[5] == pytest.approx(3.0, abs=1e-15)
    for target, inverse in INVERSES.items():  # both targets: rounded where asked, and never below 0
        assert np.all(inverse(q[:-1], 2.0, 0.05) >= inverse(q[:-1], 2.0)) and inverse(q[:-1], 2.0, 0.05).min() > 0


PATIENCE = 15  # calls before a stagnation is declared, as by default


def test_a_stagnating_solve_rounds_the_clip_until_it_settles_then_clips_hard_for_good(tmp_path):
    path = checkpoint(tmp_path / "c.pt", targets=(RATIO,))
    watched, hard = NeuralClosure(path, smoothing=0.05, patience=PATIENCE), NeuralClosure(path)
    fields = flow()
    velocity = fields["velocity"].copy()

    def call(factor):
        fields.point_data["velocity"] = velocity * factor
        return watched(fields)["nu_t"], hard(fields)["nu_t"]

    for k in range(2 * PATIENCE + 1):  # the velocity keeps moving by about 1e-3: no tenfold fall
        ours, theirs = call(1 + 1e-3 * k)
        assert watched.rounded == (k == 2 * PATIENCE) and np.array_equal(ours, theirs) != watched.rounded
    assert np.all(ours > theirs)  # rounded: above the hard clip everywhere
    ours, theirs = call(1 + 1e-3 * 2 * PATIENCE)  # settled: hard from now on
    assert not watched.rounded and np.array_equal(ours, theirs)
    for k in range(3 * PATIENCE):  # stagnating again: the clip stays hard
        assert np.array_equal(*call(1 + 1e-3 * k))
    assert watched.timings["rounded_calls"] == 1

    converging = NeuralClosure(path, smoothing=0.05, patience=PATIENCE)
    for k in range(4 * PATIENCE):  # a tenfold fall every 5 calls: never rounded
        fields.point_data["velocity"] = velocity * (1 + 10 ** (-k / 5))
        converging(fields)
    assert converging.timings["rounded_calls"] == 0
    with pytest.raises(VcnnError, match="smoothing must be a width"):
        NeuralClosure(path, smoothing=-1.0)
    assert NeuralClosure(path, smoothing=0.05, patience=0).rounded and not NeuralClosure(path, patience=0).rounded


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-13), (torch.float32, FLOAT32)])
def test_the_inference_embedding_is_the_trained_one(dtype, tolerance, monkeypatch):
    """Without gradients the vector-cloud network's tanh embedding runs as sigmoids with the
    normalization folded into its weights (`sigmoid_embedding`): the same outputs to rounding, and
    the training path (gradients on) untouched."""
    from vcnn.nn.layers import sigmoid_embedding, sigmoid_weights

    torch.manual_seed(0)
    model = build_model(CloudNetConfig(n_scalars=5, embedding=(8, 16, 12), fitting=(16,))).to(dtype)
    model.scalar_mean.copy_(torch.randn(5)), model.scalar_std.copy_(torch.rand(5) + 0.5)
    vectors, scalars, weights = torch.randn(6, 40, 2, 2, dtype=dtype), 3 * torch.randn(6, 40, 5, dtype=dtype), torch.full((6, 40), 1 / 40, dtype=dtype)
    plain = model.embed(model.normalized_scalars(scalars))
    fast = 2 * sigmoid_embedding(sigmoid_weights(model.embed, model.scalar_mean, model.scalar_std), scalars) - 1
    assert fast.shape == plain.shape and torch.allclose(fast, plain, rtol=0, atol=tolerance)
    import vcnn.nn.cloud_nets

    calls = []
    monkeypatch.setattr(vcnn.nn.cloud_nets, "sigmoid_embedding", lambda *a: calls.append(1) or sigmoid_embedding(*a))
    trained = model(vectors, scalars, weights)  # gradients on: the plain layers
    assert trained.requires_grad and not calls
    with torch.no_grad():
        inferred = model(vectors, scalars, weights)
    assert calls == [1]
    assert (inferred - trained).abs().max() <= tolerance * trained.abs().max()
    # a call cut into pieces of vcnn.nn.cloud_nets.PIECE bytes' worth of members: here 2 clouds of 40,
    # the weights folded once for all three
    folds = []
    monkeypatch.setattr(vcnn.nn.cloud_nets, "sigmoid_weights", lambda *a: folds.append(1) or sigmoid_weights(*a))
    monkeypatch.setattr(vcnn.nn.cloud_nets, "PIECE", 2 * 40 * torch.finfo(dtype).bits // 8)
    with torch.no_grad():
        pieces = model(vectors, scalars, weights)
    assert calls == [1, 1, 1, 1] and folds == [1]
    assert torch.allclose(pieces, inferred, rtol=0, atol=1e-15 if dtype == torch.float64 else 1e-6)


def test_the_sigmoid_form_trains_the_same_network():
    """`sigmoid_training` (`[training] sigmoid_tanh`): the tanh embedding trained as sigmoids gives the
    plain layers' outputs and gradients to rounding (float64), and the plain path stays the default."""
    torch.manual_seed(0)
    model = build_model(CloudNetConfig(n_scalars=5, embedding=(8, 16, 12), fitting=(16,), invariant_norm=True)).to(torch.float64)
    model.scalar_mean.copy_(torch.randn(5)), model.scalar_std.copy_(torch.rand(5) + 0.5)
    vectors, scalars = torch.randn(6, 40, 2, 2, dtype=torch.float64), 3 * torch.randn(6, 40, 5, dtype=torch.float64)
    weights = torch.rand(6, 40, dtype=torch.float64)
    weights /= weights.sum(1, keepdim=True)
    results = []
    for sigmoid in (False, True):
        model.sigmoid_training = sigmoid
        model.zero_grad()
        out = model(vectors, scalars, weights)
        (out**2).sum().backward()
        results.append((out.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}))
    (plain, plain_grads), (fast, fast_grads) = results
    assert not torch.equal(plain, fast)  # another computation ...
    assert torch.allclose(fast, plain, rtol=1e-12, atol=0)  # ... of the same function
    for name, grad in plain_grads.items():
        assert grad.abs().max() > 0 and torch.allclose(fast_grads[name], grad, rtol=1e-10, atol=1e-12 * grad.abs().max()), name
    assert not build_model(CloudNetConfig()).sigmoid_training
