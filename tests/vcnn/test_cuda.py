"""The learning side on a GPU: the numbers the CPU gives, the symmetry checker's float64 tolerance
there, and a process group that reduces the CPU tensors training reduces. Skipped where torch sees
no GPU (CI has none); run on one by `python -m pytest tests/vcnn/test_cuda.py`."""

import dataclasses

import numpy as np
import pytest
import torch

from tests.vcnn.test_closure import checkpoint, flow
from tests.vcnn.test_fast_inference import FLOAT32
from tests.vcnn.test_symmetry import TOL, model_for, random_field
from tests.vcnn.test_train import setup
from vcnn import checkpoint as checkpoints
from vcnn.closure import SETTLED, NeuralClosure
from vcnn.clouds import Ball, Ellipse, NodeIndex
from vcnn.data import feature_statistics
from vcnn.features import DERIVED_SCALARS, VECTORS, FeatureSpec, PointArrays, padded_features
from vcnn.inference import plan_batches, predict_fields
from vcnn.nn import CloudNetConfig
from vcnn.nn.cloud_nets import VectorCloudNet
from vcnn.symmetry import check_field_model
from vcnn.train import Trainer, TrainingConfig, process_group_backend, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU visible to torch")


def test_auto_takes_the_gpu():
    assert TrainingConfig(device="auto").resolved_device().type == "cuda"


def test_training_on_the_gpu_takes_the_cpu_steps_and_saves_cpu_weights(tmp_path):
    """float32 throughout (TF32 off, torch's default for matrix products): the same batches, so the
    losses differ by rounding alone."""
    assert not torch.backends.cuda.matmul.allow_tf32
    histories = {}
    for device in ("cpu", "cuda"):
        model, training, validation, config = setup(4)
        config = dataclasses.replace(config, device=device)
        histories[device] = train(model, training, validation, config, tmp_path / device, progress=False, extra={"targets": ["concentration"]})
    for cpu, gpu in zip(histories["cpu"], histories["cuda"]):
        for key in ("train_loss", "validation_rel_l2"):
            assert abs(gpu[key] - cpu[key]) <= 1e-4 * abs(cpu[key]), (key, cpu, gpu)
    restored, _ = checkpoints.load(tmp_path / "cuda" / "last.pt")  # weights_only, onto the CPU
    assert all(p.device.type == "cpu" for p in restored.parameters())


def test_training_batches_are_built_on_the_gpu_as_on_the_cpu(tmp_path):
    """The trainer builds its batches on its device: the same members, drawn on the CPU, and the
    features computed on the GPU within float32's rounding of numpy's."""
    model, training, validation, config = setup(1)
    cpu = next(iter(training.epoch(0, 0)))
    Trainer(model, training, validation, dataclasses.replace(config, device="cuda"), tmp_path, progress=False)
    assert training.device.type == "cuda"
    gpu = next(iter(training.epoch(0, 0)))
    for a, b in zip(dataclasses.astuple(gpu), dataclasses.astuple(cpu)):
        if b is not None:
            assert a.device.type == "cuda" and a.dtype == b.dtype and a.shape == b.shape
            torch.testing.assert_close(a.cpu(), b, rtol=1e-6, atol=1e-6 * float(b.abs().max()))
    on_gpu = feature_statistics(training)  # from batches built there
    training.build_on(torch.device("cpu"))
    for key, value in feature_statistics(training).items():
        np.testing.assert_allclose(on_gpu[key], value, rtol=1e-5)


def test_a_training_step_takes_a_batch_from_the_cpu(tmp_path):
    model, training, validation, config = setup(1)
    trainer = Trainer(model, training, validation, dataclasses.replace(config, device="cuda"), tmp_path, progress=False)
    training.build_on(torch.device("cpu"))
    batch = next(iter(training.epoch(0, 0)))
    assert batch.targets.device.type == "cpu" and np.isfinite(trainer.step(batch))


def test_features_are_computed_on_the_gpu_as_numpy_computes_them():
    fields = flow()
    spec = FeatureSpec(vectors=VECTORS, scalars=("strain_rate", "wall_distance") + DERIVED_SCALARS)
    model = VectorCloudNet(CloudNetConfig(n_scalars=len(spec.scalars), n_vectors=3, embedding=(8,), fitting=(8,)))
    batch = plan_batches(model, fields.points, NodeIndex(fields.points, np.array([[3.0, 0.0]])), Ball(0.4))[0]
    nodes, clouds = batch.on(torch.device("cuda"))
    arrays = PointArrays(fields, spec, "cuda")
    got = padded_features(arrays, clouds, arrays["velocity"][nodes], spec, torch.float64)
    expected = padded_features(fields, batch.clouds, fields["velocity"][batch.nodes], spec)
    for a, b in zip(got, expected):
        assert a.device.type == "cuda"
        np.testing.assert_allclose(a.cpu().numpy(), b, rtol=1e-14, atol=1e-14 * np.abs(b).max())


def test_the_closure_on_the_gpu_gives_the_cpu_values(tmp_path):
    path = checkpoint(tmp_path / "c.pt")
    fields = flow()
    cpu = NeuralClosure(path)(fields)["nu_t"]
    gpu = NeuralClosure(path, device="cuda")(fields)["nu_t"]
    assert np.linalg.norm(gpu - cpu) / np.linalg.norm(cpu) < 1e-12
    single = NeuralClosure(path, device="cuda", dtype="float32")(fields)["nu_t"]
    assert 0 < np.linalg.norm(single - cpu) / np.linalg.norm(cpu) < FLOAT32
    mixed = NeuralClosure(path, device="cuda", dtype="mixed")
    mixed(fields)
    fields.point_data["velocity"] = fields["velocity"] * (1 + 0.1 * SETTLED)  # settled: float64
    cpu = NeuralClosure(path)(fields)["nu_t"]
    assert np.linalg.norm(mixed(fields)["nu_t"] - cpu) / np.linalg.norm(cpu) < 1e-12
    assert mixed.timings["float64_calls"] == 1


@pytest.mark.parametrize("kind", ["vector_cloud", "local_mlp", "graph_kernel", "message_passing"])
def test_networks_on_the_gpu_pass_the_checker_in_float64(kind):
    pairwise = kind != "vector_cloud" and kind != "local_mlp"
    fields = random_field(2, n=150 if pairwise else 400)
    spec = FeatureSpec()
    model = model_for(2, spec, kind=kind)
    periods = np.array([[3.0, 0.0]])

    def predict(f, p, device="cuda"):
        return predict_fields(model, f, Ellipse(), spec, periods=p, device=device, dtype=torch.float64)

    report = check_field_model(predict, fields, {"c": "scalar", "nu_t": "scalar"}, periods=periods, trials=1 if pairwise else 3)
    assert report.worst() < TOL, report.deviations
    on_cpu, on_gpu = predict(fields, periods, "cpu"), predict(fields, periods)
    assert all(np.allclose(on_gpu[k], on_cpu[k], rtol=1e-12, atol=1e-14) for k in on_cpu)


def test_the_gpu_process_group_reduces_cpu_tensors_and_objects(tmp_path):
    """Training sums its epoch loss in a CPU tensor and broadcasts rank 0's validation errors as
    objects: NCCL alone has no CPU tensors, so a GPU run's group pairs it with gloo."""
    import torch.distributed as dist

    backend = process_group_backend(torch.device("cuda"))
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group(backend, store=store, rank=0, world_size=1)
    try:
        sums = torch.tensor([3.0, 2.0], dtype=torch.float64)
        dist.all_reduce(sums)
        box = [{"case": 0.5}]
        dist.broadcast_object_list(box, src=0)
        assert sums.tolist() == [3.0, 2.0] and box == [{"case": 0.5}]
        on_gpu = torch.ones(2, device="cuda")
        dist.all_reduce(on_gpu)  # DDP's gradients: NCCL
        assert on_gpu.tolist() == [1.0, 1.0]
    finally:
        dist.destroy_process_group()


def test_an_inference_batch_goes_whole_to_the_gpu(monkeypatch):
    """On the CPU a batch runs in pieces that stay in the cache (`PIECE`); on a GPU in one go."""
    torch.manual_seed(0)
    model = VectorCloudNet(CloudNetConfig()).eval()
    batch, members = 64, 357  # 22,848 members: 3 pieces in float32
    inputs = (torch.randn(batch, members, 2, 2), torch.randn(batch, members, 7), torch.full((batch, members), 1.0 / members))
    calls = []
    piece = VectorCloudNet._sigmoid_moments
    monkeypatch.setattr(VectorCloudNet, "_sigmoid_moments", staticmethod(lambda *a: calls.append(a[-1].shape[0]) or piece(*a)))
    with torch.inference_mode():
        on_cpu = model(*inputs)
        pieces = len(calls)
        on_gpu = model.to("cuda")(*(x.to("cuda") for x in inputs)).cpu()
    assert pieces > 1 and calls[pieces:] == [batch]
    assert torch.allclose(on_gpu, on_cpu, rtol=1e-4, atol=1e-5)
