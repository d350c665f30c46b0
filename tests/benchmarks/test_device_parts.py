"""The benchmarks' device-aware parts on the CPU: the closure call, the forward rate, the coupling variants."""

import types

import pytest

from benchmarks.closure_calls import closure_calls
from benchmarks.coupling import FIXTURE
from benchmarks.forward_rate import forward_rate


@pytest.mark.skipif(not (FIXTURE / "best.pt").is_file(), reason=f"no {FIXTURE}")
def test_closure_calls_time_each_precision_against_the_cpu_s_float64():
    result = closure_calls(calls=1)
    cpu = result["devices"]["cpu"]
    assert result["nodes"] == 4225 and set(cpu) == {"float32", "float64"}
    assert cpu["float64"]["nu_t_vs_cpu_float64"] == 0.0
    assert 0 < cpu["float32"]["nu_t_vs_cpu_float64"] < 1e-5
    assert all(0 < r["features_s"] and 0 < r["network_s"] and r["features_s"] + r["network_s"] <= r["call_s"] for r in cpu.values())


@pytest.mark.skipif(not (FIXTURE / "best.pt").is_file(), reason=f"no {FIXTURE}")
def test_the_embedding_floor_runs_every_padded_member_of_a_call():
    import torch

    from benchmarks.closure_calls import embedding_floor
    from meshes.fields import MeshFields
    from vcnn.closure import NeuralClosure
    from vcnn.nn import CloudNetConfig, build_model

    fields = MeshFields.read(FIXTURE / "reference" / "alpha_1.1250")
    closure = NeuralClosure(FIXTURE / "best.pt")
    members = closure.index(fields).clouds(fields.points, closure.shape).offsets[-1]  # without padding
    for dtype in (torch.float32, torch.float64):
        floor = embedding_floor(closure, fields, dtype, repeats=1)
        assert members <= floor["members"] <= 1.1 * members
        assert 0 < floor["products_s"] and 0 < floor["sigmoids_s"] and floor["floor_s"] == floor["products_s"] + floor["sigmoids_s"]
    other = types.SimpleNamespace(model=build_model(CloudNetConfig(kind="local_mlp")))  # no sigmoid form to time
    assert "skipped" in embedding_floor(other, fields, torch.float32)


def test_forward_rate_counts_the_network_s_flops_against_a_matrix_product():
    result = forward_rate(members=20, clouds=(8,), rounds=1)
    assert result["device"] == "cpu" and result["gemm_size"] == 1024 and result["parameters"] == 39553
    assert result["gemm_gflops"] > 0 and 0 < result["forward"]["8"]["share_of_gemm"]


def test_the_coupling_benchmark_adds_the_gpu_variant_where_torch_sees_a_gpu(monkeypatch):
    import torch

    from benchmarks.coupling import VARIANTS, variants

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert variants() == VARIANTS
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert variants() == {**VARIANTS, "mixed_cuda": ("--device", "cuda")}
