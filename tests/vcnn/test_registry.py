"""The network registry: every built-in name builds its network, a network of one's own joins by
`@register`, and a process that runs a vector-cloud network never loads torch-geometric."""

import subprocess
import sys

import pytest

from vcnn.nn import NETWORKS, CloudNet, CloudNetConfig, ModelError, build_model, register
from vcnn.nn.cloud_nets import VectorCloudNet
from vcnn.nn.registry import BUILT_IN


@pytest.mark.parametrize("kind", sorted(BUILT_IN))
def test_every_built_in_name_builds_its_network(kind):
    model = build_model(CloudNetConfig(kind=kind, n_scalars=3, embedding=(8, 8), kernel=(8,), fitting=(8,), m_prime=2))
    assert isinstance(model, NETWORKS[kind]) and issubclass(NETWORKS[kind], CloudNet)
    assert NETWORKS[kind].__name__ == BUILT_IN[kind].partition(":")[2]


def test_a_network_of_ones_own_is_registered_once():
    @register("test_registry_copy_of_vector_cloud")
    class Copy(VectorCloudNet):
        pass

    assert isinstance(build_model(CloudNetConfig(kind="test_registry_copy_of_vector_cloud")), Copy)
    assert "test_registry_copy_of_vector_cloud" in NETWORKS and "test_registry_copy_of_vector_cloud" in set(NETWORKS)
    assert len(NETWORKS) == len(set(NETWORKS))
    with pytest.raises(ValueError, match="registered twice"):
        register("vector_cloud")(Copy)
    with pytest.raises(ModelError, match="whole_mesh"):
        CloudNetConfig(kind="no_such_network")


def test_a_vector_cloud_closure_does_not_load_torch_geometric():
    script = (
        "import sys\n"
        "import cases.cli, vcnn.closure, vcnn.train, vcnn.data\n"
        "from vcnn.nn import NETWORKS, CloudNetConfig, build_model\n"
        "build_model(CloudNetConfig())\n"
        "assert 'message_passing' in NETWORKS and 'whole_mesh' in sorted(NETWORKS)\n"
        "assert 'torch_geometric' not in sys.modules, 'loaded with the vector-cloud network'\n"
        "CloudNetConfig(kind='message_passing', graph='mesh')\n"
        "assert 'torch_geometric' in sys.modules, 'not loaded with a graph network'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
