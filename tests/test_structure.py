"""The structure rules of issue 15, checked on the source: short functions where the workflows
live, no import circles between the project's modules, registries that name the valid choices."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("meshes", "solvers", "vcnn", "cases")
LONGEST = 60


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_at_load(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules a module imports when it is loaded (module level, not inside functions)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
    return {module for module in found if module in known and module != name}


def test_no_import_circles():
    known = modules()
    graph = {name: imports_at_load(path, name, set(known)) for name, path in known.items()}
    state: dict[str, int] = {}

    def visit(name, trail):
        state[name] = 1
        for other in graph[name]:
            if state.get(other) == 1:
                pytest.fail("import circle: " + " -> ".join(trail[trail.index(other):] + [other]))
            if other not in state:
                visit(other, trail + [other])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("where", ["cases", "vcnn/train.py"])
def test_functions_are_short(where):
    paths = [ROOT / where] if where.endswith(".py") else sorted((ROOT / where).rglob("*.py"))
    long = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= LONGEST:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


def test_registries_name_the_valid_choices():
    from cases.errors import CaseError
    from cases.flows import FAMILIES, FLOWS, family, flow
    from vcnn.nn import NETWORKS, CloudNetConfig, ModelError

    assert set(FLOWS) == {"hills-transport", "airfoil-transport", "channel-rans", "hills-rans", "phll-rans"}
    assert {"hills-transport", "airfoil-transport", "hills-rans", "hills-rans-one-equation"} <= set(FAMILIES)
    with pytest.raises(CaseError, match="hills-rans"):
        flow("hill-rans")
    with pytest.raises(CaseError, match="airfoil-transport"):
        family("airfoil")
    assert {"vector_cloud", "local_mlp", "raw_cloud", "graph_kernel", "graph_kernel_raw", "message_passing"} <= set(NETWORKS)
    with pytest.raises(ModelError, match="vector_cloud"):
        CloudNetConfig(kind="vector_clouds")


def test_every_flow_has_the_interface():
    from cases.flows import FLOWS

    for name, module in FLOWS.items():
        assert module.NAME == name
        for attribute in ("HELP", "FAMILIES", "add_arguments", "values", "configure", "solve", "mesh_fields", "record"):
            assert hasattr(module, attribute), f"flow {name} lacks {attribute}"


def test_turbulence_models_are_registered_by_name():
    pytest.importorskip("dolfinx")
    from solvers.errors import SolverError
    from solvers.models import MODELS, check_model

    assert {"one-equation", "k-omega", "k-epsilon", "k-omega-sst"} <= set(MODELS)
    assert check_model("k-omega") == "k-omega"
    with pytest.raises(SolverError, match="k-epsilon"):
        check_model("k-omega-ss")


def test_the_public_api_resolves():
    import vcnn

    for name in vcnn.__all__:
        assert getattr(vcnn, name) is not None, name
    with pytest.raises(AttributeError):
        vcnn.not_a_name  # noqa: B018
