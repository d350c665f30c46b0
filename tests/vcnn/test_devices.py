"""`vcnn.devices.check_device`: a device name torch cannot use here is one line before any work,
from the closure, the training configuration and the commands that take `--device`."""

import pytest
import torch

from tests.vcnn.test_closure import checkpoint
from vcnn.closure import NeuralClosure
from vcnn.devices import check_device
from vcnn.errors import VcnnError
from vcnn.train import TrainingConfig


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "mps", ""])
def test_unknown_devices_are_refused(name):
    with pytest.raises(VcnnError, match="unknown device .*; choose cpu, cuda or cuda:N"):
        check_device(name)


def test_a_gpu_torch_does_not_see_is_refused(monkeypatch):
    assert check_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(VcnnError, match="device 'cuda': torch .* sees no GPU here; use cpu"):
        check_device("cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda") == "cuda" and check_device("cuda:1") == "cuda:1"
    with pytest.raises(VcnnError, match=r"device 'cuda:2': torch sees 2 GPU\(s\) here, cuda:0 to cuda:1"):
        check_device("cuda:2")


def test_the_closure_and_the_training_refuse_a_missing_gpu_before_any_work(tmp_path, monkeypatch):
    path = checkpoint(tmp_path / "c.pt")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # "auto" asks this (a GPU machine too)
    with pytest.raises(VcnnError, match="sees no GPU"):  # not "a damaged checkpoint", as torch's load said
        NeuralClosure(path, device="cuda")
    with pytest.raises(VcnnError, match="sees no GPU"):
        TrainingConfig(device="cuda:0")
    assert TrainingConfig(device="auto").resolved_device().type == "cpu"
