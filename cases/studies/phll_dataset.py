"""The reference fields of a `vcnn dataset phll` case: the benchmark's k-omega SST solution and the
LES of the same hill (PHLL29), interpolated onto the nodes of our SST solution, so that one case
directory holds all three on one mesh.

The `phll-rans` flow adds them in its record step when its configuration names a PHLL29 directory
(`reference`), before the case is written: the case directory stays staged (complete or absent).
Interpolation: `les_targets.centres_on_mesh` (the benchmark's cell centres with our wall nodes as
no-slip points). The benchmark's four test cases hold no data in PHLL29, by design; their names
are known (`phll_closure.TEST`) and nothing is looked for: their cases hold our SST only.
"""

from __future__ import annotations

from pathlib import Path

from cases.errors import CaseError

LES_ARRAYS = {"U_LES": "velocity_les", "k_LES": "k_les", "tauij_LES": "reynolds_stress_les"}
"""PHLL29 LES field -> our point array (tauij_LES: <u'_i u'_j>, its in-plane 2 x 2 block)."""
BENCHMARK_ARRAYS = {"velocity": "velocity_sst_benchmark", "k": "k_sst_benchmark", "nu_t": "nu_t_sst_benchmark"}
"""The benchmark's SST field (`les_targets.benchmark_sst` names) -> our point array; all vanish on the walls."""


def is_test_case(name: str) -> bool:
    from cases.studies.phll_closure import TEST

    return name in TEST


def phll29() -> Path:
    """The PHLL29 directory (`les_targets.PHLL29`, relative to the project root), resolved; CaseError if absent."""
    from cases.studies.les_targets import PHLL29

    if not PHLL29.is_dir():
        raise CaseError(f"the PHLL29 directory {PHLL29.absolute()} does not exist (run from the project root, beside ../shared)")
    return PHLL29.resolve()


def shared_cases() -> list[str]:
    """The hills with LES in PHLL29 (the 23 shared cases), never a test case: `--geometries all`."""
    return sorted(p.name for p in phll29().iterdir() if p.is_dir() and not is_test_case(p.name))


def reference_settings() -> dict:
    """The configuration value that makes a phll-rans solve carry the reference fields (`add_reference_fields`)."""
    return {"reference": str(phll29())}


def add_reference_fields(fields, geometry: str, directory: Path) -> dict:
    """Put the benchmark's SST and the LES of hill `geometry` on `fields` (our solution, with
    `wall_distance`) as the arrays of `BENCHMARK_ARRAYS` and `LES_ARRAYS`, where PHLL29 holds the
    hill; record what was added in `fields.metadata["reference"]` and return that."""
    from cases.studies.les_targets import LES_FIELDS, benchmark_sst, centres_on_mesh, first_row_reattachment, read_les

    case_dir = Path(directory) / geometry
    record = {"phll29": str(directory), "les": False, "benchmark_sst": False}
    if is_test_case(geometry):
        record["missing"] = "a benchmark test case: its data are not shared"
    elif not case_dir.is_dir():
        record["missing"] = f"not a shared case ({case_dir} does not exist)"
    else:
        les = read_les(case_dir)
        bench = benchmark_sst(case_dir)
        for source, names in ((les, LES_ARRAYS), (bench, BENCHMARK_ARRAYS)):
            on_mesh = centres_on_mesh(source, fields, list(names))
            for name, array in names.items():
                fields[array] = on_mesh[name]
        record.update(
            les=True, benchmark_sst=True, arrays=[*LES_ARRAYS.values(), *BENCHMARK_ARRAYS.values()],
            les_reattachment=first_row_reattachment(les, les[LES_FIELDS[0]]),
            benchmark_sst_reattachment=bench.metadata["validation"]["reattachment"],
        )
    fields.metadata["reference"] = record
    return record


def manifest_entry(metadata: dict) -> dict:
    """What the dataset manifest lists of a phll case: whether it holds the LES and the benchmark's SST."""
    reference = metadata.get("reference", {})
    return {"les": reference.get("les", False), "benchmark_sst": reference.get("benchmark_sst", False)}
