"""The import rules of DESIGN.md, checked on the source: who may import whom."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "meshes": {"solvers", "vcnn", "cases", "torch", "torch_geometric"},
    "solvers": {"vcnn", "cases", "torch", "torch_geometric"},
    "vcnn": {"solvers", "cases", "dolfinx", "dolfinx_mpc", "ufl", "basix", "petsc4py", "gmsh"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_import_rules(package):
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_roots(path) & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_library_packages_do_not_import_cases():
    for package in ("meshes", "solvers", "vcnn"):
        for path in sorted((ROOT / package).rglob("*.py")):
            assert "cases" not in imported_roots(path), path


def test_closure_challenge_only_in_scoring_files():
    """The benchmark's test-case ground truth ships in `closure_challenge`: only scoring code may see it."""
    for package in ("meshes", "solvers", "vcnn", "cases"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "score" not in str(path.relative_to(ROOT)):
                assert "closure_challenge" not in imported_roots(path), path
