"""Bad input to the `vcnn` command (issue 19): damaged checkpoints, fields a network cannot read,
broken study files and output paths that cannot be written are each refused with one line on
stderr and exit code 2, before any work, never with a traceback.

Everything runs in-process (`cases.cli.main`) on a tiny field (80 nodes) and an untrained network
saved as `vcnn train` saves one; nothing is solved.
"""

import json
import types

import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay

from cases.cli import main
from meshes.fields import MeshFields
from vcnn import checkpoint
from vcnn.features import FeatureSpec
from vcnn.nn import CloudNetConfig, build_model

TRANSPORT = ("velocity", "pressure", "concentration", "strain_rate", "wall_distance", "mixing_length")
RANS = ("velocity", "pressure", "strain_rate", "wall_distance", "nu_t", "k", "omega")
SPEC = FeatureSpec(scalars=("strain_rate", "wall_distance", "proximity"))


def field(arrays=TRANSPORT, dim: int = 2, n: int = 80, **metadata) -> MeshFields:
    """A small smooth field on [0, 3] x [0, 1] (x [0, 1]) with the named point arrays."""
    points = np.random.default_rng(0).uniform(0, [3, 1, 1][:dim], (n, dim))
    y = points[:, 1]
    velocity = np.c_[1 + 0.3 * np.sin(points[:, 0]), 0.2 * np.cos(points[:, 1:])]
    values = {"velocity": velocity, "wall_distance": np.minimum(y, 1 - y), "strain_rate": 1 + np.abs(np.cos(points[:, 0])) + y}
    data = {name: values.get(name, np.sin(np.pi * y) + 1) for name in arrays}
    return MeshFields(points, Delaunay(points).simplices, "triangle" if dim == 2 else "tetra", point_data=data, metadata={"periods": [[3.0] + [0.0] * (dim - 1)], **metadata})


def save_network(path, family="hills-transport", weight=None, scalar_std=None, target="concentration"):
    """An untrained network with the data configuration `vcnn train` writes; `weight` fills its
    first weight tensor, `scalar_std` its normalisation scale of the input scalars."""
    torch.manual_seed(0)
    model = build_model(CloudNetConfig(n_scalars=3, embedding=(4, 4), m_prime=2, fitting=(4,), outputs=(target,)))
    with torch.no_grad():
        if weight is not None:
            next(model.parameters()).fill_(weight)
        if scalar_std is not None:
            model.scalar_std.fill_(scalar_std)
    return checkpoint.save(path, model, **checkpoint.data_config({"shape": "ellipse"}, SPEC, [target], family=family))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    data = root / "data"
    field(case="hills-transport").write(data / "cases" / "alpha_1.0000")
    (data / "manifest.json").write_text(json.dumps({"family": "hills-transport", "resolution": None, "cases": [{"name": "alpha_1.0000", "alpha": 1.0}]}))
    field(RANS, case="hills-rans", nu=1e-4).write(root / "rans")
    field(dim=3, case="hills-transport").write(root / "three_d")
    good = save_network(root / "good.pt")
    return types.SimpleNamespace(root=root, data=data, case=data / "cases" / "alpha_1.0000", good=good)


def refused(capsys, argv, match: str) -> str:
    """Run `vcnn argv` in-process; assert exit code 2 and one `vcnn: error:` line containing `match`."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("vcnn: error:"), err
    assert match in lines[0], lines[0]
    return lines[0]


def test_a_good_checkpoint_on_a_good_field_passes(world, capsys):
    """The baseline the refusals below differ from: the same inputs, undamaged, are accepted."""
    assert main(["check-invariance", "--model", str(world.good), "--fields", str(world.case), "--trials", "1"]) == 0
    assert "| rotation |" in capsys.readouterr().out


# --- checkpoints --------------------------------------------------------------------------------


def damaged(world, tmp_path, how: str):
    path = tmp_path / f"{how}.pt"
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(world.good.read_bytes()[: world.good.stat().st_size // 2])
    elif how == "directory":
        path.mkdir()
    elif how in ("nan", "inf"):
        save_network(path, weight=float(how))
    return path


CHECKPOINTS = {"empty": "is empty (0 bytes)", "truncated": "cannot read checkpoint", "directory": "is a directory", "nan": "NaN or infinite weights", "inf": "NaN or infinite weights"}


def commands(world, model):
    return {
        "evaluate": ["evaluate", "--model", model, "--data", world.data],
        "check-invariance": ["check-invariance", "--model", model, "--fields", world.case],
        "frames": ["frames", "--model", f"net={model}", "--fields", world.case],
    }


@pytest.mark.parametrize("command", ["evaluate", "check-invariance", "frames"])
@pytest.mark.parametrize("how", list(CHECKPOINTS))
def test_a_damaged_checkpoint_is_one_line(world, tmp_path, capsys, command, how):
    refused(capsys, commands(world, damaged(world, tmp_path, how))[command], CHECKPOINTS[how])


def test_couple_refuses_an_empty_checkpoint_before_any_solve(world, tmp_path, capsys):
    pytest.importorskip("dolfinx")
    refused(capsys, ["couple", "--model", damaged(world, tmp_path, "empty"), "--alpha", "1", "--out", tmp_path / "out"], "is empty")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "command, fields, match",
    [
        ("check-invariance", "rans", "trained on hills-transport cases"),
        ("frames", "rans", "trained on hills-transport cases"),
        ("check-invariance", "three_d", "is a 3-D field; the network is 2-D"),
        ("frames", "three_d", "is a 3-D field; the network is 2-D"),
    ],
)
def test_a_checkpoint_of_another_family_or_dimension_is_refused(world, capsys, command, fields, match):
    refused(capsys, commands(world, world.good)[command][:-1] + [world.root / fields], match)


def test_evaluate_refuses_a_dataset_of_another_family(world, tmp_path, capsys):
    rans = save_network(tmp_path / "rans.pt", family="hills-rans")
    refused(capsys, ["evaluate", "--model", rans, "--data", world.data], "is of family 'hills-transport', expected 'hills-rans'")


def test_non_finite_predictions_fail_the_symmetry_check(world, tmp_path, capsys):
    """Finite weights, but a zero normalisation scale: the predictions are NaN, and a NaN deviation
    must not read as 'invariant'."""
    broken = save_network(tmp_path / "zero_std.pt", scalar_std=0.0)
    refused(capsys, ["check-invariance", "--model", broken, "--fields", world.case, "--trials", "1"], "predicts NaN or infinite concentration")


# --- fields -------------------------------------------------------------------------------------


def broken_fields(world, tmp_path, how: str):
    """A copy of the good case with one defect."""
    out = tmp_path / how
    good = MeshFields.read(world.case)
    if how == "no_velocity":
        del good.point_data["velocity"]
    elif how == "no_strain_rate":
        del good.point_data["strain_rate"]
    elif how == "scalar_velocity":
        good.point_data["velocity"] = good["velocity"][:, 0]
    elif how == "vector_wall_distance":
        good.point_data["wall_distance"] = good["velocity"]
    elif how == "nan_strain_rate":
        good["strain_rate"] = np.where(np.arange(good.num_nodes) == 5, np.nan, good["strain_rate"])
    elif how == "nan_weights":
        good.weights[3] = np.inf
    good.write(out)
    vtu = out / "fields.vtu"
    if how == "no_node_weight":
        import meshio

        mesh = meshio.read(vtu)
        del mesh.point_data["node_weight"]
        meshio.write(vtu, mesh, file_format="vtu")
    elif how == "listed_but_missing":
        meta = json.loads((out / "meta.json").read_text())
        meta["arrays"]["vorticity"] = "scalar"
        (out / "meta.json").write_text(json.dumps(meta))
    elif how == "kind_not_as_stored":
        meta = json.loads((out / "meta.json").read_text())
        meta["arrays"]["strain_rate"] = "vector"
        (out / "meta.json").write_text(json.dumps(meta))
    elif how == "empty_vtu":
        vtu.write_bytes(b"")
    elif how == "garbage_vtu":
        vtu.write_bytes(b"\x00\xffnot a vtu file\n" * 10)
    elif how == "garbage_meta":
        (out / "meta.json").write_text("{ not json")
    return out


FIELDS = {
    "no_velocity": "fields.vtu: unknown feature 'velocity'",
    "no_strain_rate": "fields.vtu: unknown feature 'strain_rate'",
    "scalar_velocity": "fields.vtu: feature 'velocity' must be a vector array, it is a scalar",
    "vector_wall_distance": "fields.vtu: feature 'wall_distance' must be a scalar array, it is a vector",
    "nan_strain_rate": "fields.vtu: point array 'strain_rate' holds NaN or infinite values",
    "nan_weights": "fields.vtu: the node weights ('node_weight') hold NaN or infinite values",
    "no_node_weight": "fields.vtu lacks the point array(s) ['node_weight']",
    "listed_but_missing": "fields.vtu lacks the point array(s) ['vorticity']",
    "kind_not_as_stored": "fields.vtu: point array 'strain_rate' has shape (80,), not that of a vector (meta.json)",
    "empty_vtu": "fields.vtu: not a readable VTU file",
    "garbage_vtu": "fields.vtu: not a readable VTU file",
    "garbage_meta": "cannot read",
}


@pytest.mark.parametrize("how", list(FIELDS))
@pytest.mark.parametrize("command", ["check-invariance", "frames"])
def test_fields_a_network_cannot_read_are_one_line(world, tmp_path, capsys, command, how):
    line = refused(capsys, commands(world, world.good)[command][:-1] + [broken_fields(world, tmp_path, how)], FIELDS[how])
    assert str(tmp_path / how) in line  # the file is named


def test_evaluate_names_the_case_file_of_a_bad_array(world, tmp_path, capsys):
    data = tmp_path / "data"
    (data / "cases").mkdir(parents=True)
    (data / "manifest.json").write_text((world.data / "manifest.json").read_text())
    broken_fields(world, tmp_path, "nan_strain_rate").rename(data / "cases" / "alpha_1.0000")
    refused(capsys, ["evaluate", "--model", world.good, "--data", data], f"{data}/cases/alpha_1.0000/fields.vtu: point array 'strain_rate'")


# --- study files --------------------------------------------------------------------------------

STUDY = """
[dataset]
directory = "{data}"
resolution = "20x12"

[split]
train = ["1.0,1.5"]
validate = ["0.8"]

[cloud]
shape = "ellipse"

[features]
scalars = ["strain_rate", "wall_distance"]

[model]
targets = ["concentration"]
embedding = [8, 16]
m_prime = 2

[training]
epochs = 2

[baselines.local_mlp]
model = {{ kind = "local_mlp" }}
cloud = {{ shape = "knn", k = 1 }}

[report]
rotate_deg = 90
"""

STUDIES = {
    "unknown key": (("[split]\n", "[split]\ntrain_extra = 3\n"), "unknown key 'train_extra' in [split]; it takes test, train, validate"),
    "unknown section": (("[training]", "[trainig]"), "unknown section [trainig]; a study file has baselines, cloud, coupling,"),
    "typo in a known section": (("epochs = 2", "epoch = 2"), "unknown key 'epoch' in [training]; it takes batch_size,"),
    "epochs a word": (("epochs = 2", 'epochs = "ten"'), "[training] epochs must be an integer, got 'ten'"),
    "epochs a fraction": (("epochs = 2", "epochs = 2.5"), "[training] epochs must be an integer, got 2.5"),
    "a flag as a number": (("epochs = 2", "epochs = 2\nlearning_rate = true"), "[training] learning_rate must be a number, got true"),
    "train not a list": (('train = ["1.0,1.5"]', "train = 1.0"), "[split] train must be a list of numbers or strings, got 1.0"),
    "widths not a list": (("embedding = [8, 16]", "embedding = 8"), "[model] embedding must be a list of integers, got 8"),
    "cloud key of another shape": (('shape = "ellipse"', 'shape = "ellipse"\nk = 3'), "unknown key 'k' in [cloud]; it takes diffusivity, eps, reaction, shape"),
    "baseline key": (('model = { kind = "local_mlp" }', 'model = { kind = "local_mlp" }\nepochs = 1'), "unknown key 'epochs' in [baselines.local_mlp]; it takes cloud, model, training"),
    "baseline model key": (('{ kind = "local_mlp" }', '{ kind = "local_mlp", size = 3 }'), "unknown key 'size' in [baselines.local_mlp.model]"),
    "report key": (("rotate_deg = 90", "rotate_degrees = 90"), "unknown key 'rotate_degrees' in [report]"),
    "a list as a word": (('scalars = ["strain_rate", "wall_distance"]', 'scalars = "strain_rate"'), "[features] scalars must be a list of strings, got 'strain_rate'"),
    "no split entry": (('validate = ["0.8"]', ""), "[split] lacks validate"),
}


def study_file(tmp_path, replace=None):
    text = STUDY.format(data=tmp_path / "data")
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("command", ["train", "run"])
@pytest.mark.parametrize("case", list(STUDIES))
def test_a_study_file_with_a_mistake_is_one_line_in_its_words(tmp_path, capsys, command, case):
    replace, match = STUDIES[case]
    line = refused(capsys, [command, study_file(tmp_path, replace), "--out", tmp_path / "run"], match)
    assert line.startswith(f"vcnn: error: {tmp_path / 'study.toml'}: ")
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


def test_a_study_without_a_model_section_is_refused(tmp_path, capsys):
    text = STUDY.format(data=tmp_path / "data")
    start = text.index("[model]")
    (tmp_path / "study.toml").write_text(text[:start] + text[text.index("[training]") :])
    refused(capsys, ["train", tmp_path / "study.toml", "--out", tmp_path / "run"], "no section [model]; a study file needs [model], [split]")


@pytest.mark.parametrize(
    "what, match",
    [("binary", "is not a text (TOML) file"), ("directory", "is a directory"), ("missing", "does not exist"), ("not toml", "invalid TOML")],
)
@pytest.mark.parametrize("command", ["train", "run"])
def test_a_study_that_is_no_study_file_is_one_line(tmp_path, capsys, command, what, match):
    path = tmp_path / "study.toml"
    if what == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif what == "directory":
        path.mkdir()
    elif what == "not toml":
        path.write_text("[split\ntrain = ")
    refused(capsys, [command, path], match)


def test_the_shipped_studies_pass_the_schema():
    from pathlib import Path

    from cases.study import load_study

    for path in ("hills_transport.toml", "hills_transport_demo.toml", "hills_closure.toml", "hills_closure_one_equation.toml", "airfoil_frames.toml"):
        load_study(Path(__file__).resolve().parents[2] / "cases" / path)


# --- output paths -------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["missing directory", "a directory"])
def test_an_unwritable_json_is_refused_before_the_check(world, tmp_path, capsys, monkeypatch, where):
    import cases.studies.evaluate

    monkeypatch.setattr(cases.studies.evaluate, "check_checkpoint_invariance", lambda *a: pytest.fail("the check ran"))
    path, match = ("/missing/dir/x.json", "the directory /missing/dir does not exist") if where == "missing directory" else (tmp_path, "is a directory, not a file to write")
    refused(capsys, ["check-invariance", "--model", world.good, "--fields", world.case, "--json", path], match)


@pytest.mark.parametrize("command", ["evaluate", "frames"])
@pytest.mark.parametrize("where", ["file", "under a file"])
def test_out_on_an_existing_file_is_refused_before_the_work(world, tmp_path, capsys, monkeypatch, command, where):
    import cases.studies.evaluate
    import cases.studies.frames

    for module, name in ((cases.studies.evaluate, "evaluate_checkpoint"), (cases.studies.frames, "frame_study")):
        monkeypatch.setattr(module, name, lambda *a: pytest.fail("the work ran"))
    file = tmp_path / "taken"
    file.write_text("a result of something else\n")
    out = file if where == "file" else file / "sub"
    match = "exists and is not a directory" if where == "file" else f"{file} is a file"
    refused(capsys, commands(world, world.good)[command] + ["--out", out], match)
    assert file.read_text() == "a result of something else\n"


# --- the LES-trained closure on a benchmark hill ----------------------------------------------------
@pytest.mark.parametrize(
    "args, match",
    [
        (["--geometry", "alpha_1_9000_3036"], "a hill geometry is named"),  # malformed name
        (["--geometry", "alpha_05_1007_4048"], "needs a period"),  # a period shorter than the flanks
        (["--geometry", "alpha_10_9000_3036", "--alpha", "1.0"], "not both"),
        (["--geometry", "alpha_10_9000_3036", "--max-iterations", "0"], "max_iterations >= 1"),
        (["--geometry", "alpha_10_9000_3036", "--precision", "float32", "--smoothing", "0"], "--precision, --smoothing: for closures coupled by --alpha"),
        (["--geometry", "alpha_10_9000_3036", "--device", "gpu"], "[coupling] unknown device 'gpu'"),
    ],
)
def test_couple_on_a_benchmark_hill_refuses_bad_input_before_any_solve(world, tmp_path, capsys, args, match):
    good = save_network(tmp_path / "phll.pt", family="phll", target="nu_t_ratio")
    refused(capsys, ["couple", "--model", good, *args, "--out", tmp_path / "out"], match)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "family, target, match",
    [("hills-rans", "nu_t_ratio", "not trained on the Closure Challenge hills"), ("phll", "concentration", "not one closure target")],
)
def test_couple_on_a_benchmark_hill_refuses_a_checkpoint_of_another_family_or_target(tmp_path, capsys, family, target, match):
    other = save_network(tmp_path / "other.pt", family=family, target=target)
    refused(capsys, ["couple", "--model", other, "--geometry", "alpha_10_9000_3036", "--out", tmp_path / "out"], match)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, match", [
    (["--smoothing", "-0.1"], "smoothing must be a width"),
    (["--patience", "-1"], "patience"),
    (["--precision", "float32", "--tolerance", "1e-8"], "float32 throughout cannot converge to a tolerance of 1e-08"),  # its floor: it stalled
])
def test_couple_refuses_bad_closure_settings_before_any_solve(tmp_path, capsys, args, match):
    good = save_network(tmp_path / "closure.pt", family="hills-rans", target="nu_t_ratio")
    refused(capsys, ["couple", "--model", good, "--alpha", "1", *args, "--out", tmp_path / "out"], match)
    assert not (tmp_path / "out").exists()


# --- devices --------------------------------------------------------------------------------------
def test_a_device_torch_cannot_use_is_one_line_before_any_work(world, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    refused(capsys, ["predict", "--model", world.good, "--fields", world.case, "--device", "gpu", "--out", tmp_path / "p"], "unknown device 'gpu'")
    refused(capsys, ["predict", "--model", world.good, "--fields", world.case, "--device", "cuda", "--out", tmp_path / "p"], "sees no GPU here")
    closure = save_network(tmp_path / "closure.pt", family="hills-rans", target="nu_t_ratio")
    refused(capsys, ["couple", "--model", closure, "--alpha", "1", "--device", "cuda", "--out", tmp_path / "c"], "sees no GPU here")
    assert not (tmp_path / "p").exists() and not (tmp_path / "c").exists()
