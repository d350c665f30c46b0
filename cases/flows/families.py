"""Case families: sets of cases that differ by one parameter (the hill slope alpha, the angle of
attack of an airfoil), or by name (`NamedFamily`: the Closure Challenge hills).

A `Family` says how that parameter is named in case directories, manifests, solve options, study
files and reports, which values are allowed, and whether the cases take a mesh resolution.
Datasets, studies and reports go through it. Each flow module (`cases.flows`) declares its
families; the registry there collects them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from cases.errors import CaseError

VECTOR_ARRAYS = ("velocity",)
"""Point arrays that are vectors (the rest are scalars), for network outputs."""


@dataclasses.dataclass(frozen=True)
class Family:
    name: str  # the `vcnn solve` and `vcnn dataset` sub-command, and the manifest's family
    parameter: str  # manifest key, case-directory prefix and `vcnn solve --<parameter>`
    config_key: str  # the parameter's name in a case's meta.json config
    label: str  # how reports write the parameter
    unit: str  # appended to values in reports
    check: Callable  # raises CaseError outside the family (`NamedFamily`: returns the name as spelt)
    resolution: bool  # the cases accept --resolution NXxNY
    arrays: tuple[str, ...]  # the point arrays of every case
    window: tuple | None = None  # what figures show, ((xmin, xmax), (ymin, ymax)); None: everything
    derived: tuple[str, ...] = ()  # closure families: `vcnn.closure.closure_targets`, added on loading
    solve: str | None = None  # the `vcnn solve` sub-command, if not `name`
    model: str | None = None  # RANS families: the closure of the cases (`vcnn solve --model`)
    plural: str = ""  # the `vcnn dataset` option of the values, if not --<parameter>s
    values_help: str = "1.0:2.0:0.05 (inclusive) or 0.5,2.5; repeatable"  # its help
    manifest_entry: Callable[[dict], dict] = lambda metadata: {}  # what the manifest lists of a case's meta.json metadata besides its parameter, mesh and statistics

    @property
    def option(self) -> str:
        """The `vcnn dataset` option of the values (`--alphas`)."""
        return f"--{self.plural or self.parameter + 's'}"

    @property
    def flow(self) -> str:
        """The flow (`cases.flows.FLOWS`) that solves a case of the family."""
        return self.solve or self.name

    def largest(self, values: list):
        """The value whose case is the largest (the most cells: the longest hill)."""
        return max(values)

    def case_values(self, value: float, resolution: tuple[int, int] | None = None) -> dict:
        """The flow's configuration values of the case at `value` (and cells nx x ny, if given)."""
        values = {self.config_key: value}
        if self.model is not None:
            values["model"] = self.model
        if resolution is not None:
            values["nx"], values["ny"] = resolution
        return values

    def turning_window(self) -> tuple | None:
        """A square about the origin holding `window` in every frame (the frame study turns fields
        about the origin)."""
        if self.window is None:
            return None
        r = max(abs(v) for pair in self.window for v in pair)
        return ((-r, r), (-r, r))

    def _range(self, part: str) -> tuple[float, float, int]:
        """(start, step, count) of an inclusive range 'start:stop:step'."""
        pieces = part.split(":")
        if len(pieces) != 3:
            raise self._malformed(part)
        start, stop, step = (self._number(v, part) for v in pieces)
        if not step > 0 or not np.isfinite((stop - start) / step):
            raise self._malformed(part)
        return start, step, max(int(np.floor((stop - start) / step + 1e-9)) + 1, 0)

    def _number(self, text: str, part: str | None = None) -> float:
        try:
            return float(text)
        except ValueError:
            raise self._malformed(part or text) from None

    def _malformed(self, part: str) -> CaseError:
        return CaseError(f"{self.parameter} values must look like 1.0:2.0:0.05 or 0.5,2.5, got {part!r}")

    def case_name(self, value: float) -> str:
        return f"{self.parameter}_{value:.4f}"

    def describe(self, value: float) -> str:
        return f"{self.label} = {value:g}{self.unit}"

    def parse(self, specs: list[str], force: bool = False) -> list[float]:
        """'1.0:2.0:0.05' (inclusive range) and '0.5,2.5' lists -> sorted unique checked values;
        a range is counted before it is listed (`cases.limits.check_count`)."""
        from cases.limits import check_count

        values: list[float] = []
        for spec in specs:
            for part in str(spec).split(","):
                part = part.strip()
                if ":" in part:
                    start, step, count = self._range(part)
                    check_count(f"{self.option} {part}", len(values) + count, force)
                    values.extend(start + step * np.arange(count))
                elif part:
                    values.append(self._number(part))
        if not values:
            raise CaseError(f"no {self.parameter} values given")
        check_count(f"{self.option} {','.join(map(str, specs))}", len(values), force)
        values = sorted({round(float(v), 6) for v in values})
        for value in values:
            self.check(value)
        return values


@dataclasses.dataclass(frozen=True)
class NamedFamily(Family):
    """A family whose cases are named, not numbered (`alpha_05_10071_4048`): `check` returns a
    name's own spelling or raises CaseError; `everything` lists the cases of `all`; the case
    directory is the name; `settings` adds configuration values to every case."""

    everything: Callable[[], list[str]] = list
    settings: Callable[[], dict] = dict
    size: Callable[[str], float] = len  # orders the cases by size (`largest`)

    def largest(self, values: list[str]) -> str:
        return max(values, key=self.size)

    def case_values(self, value: str, resolution: tuple[int, int] | None = None) -> dict:
        return {**super().case_values(value, resolution), **self.settings()}

    def case_name(self, value: str) -> str:
        return value

    def describe(self, value: str) -> str:
        return f"{self.label} {value}"

    def parse(self, specs: list[str], force: bool = False) -> list[str]:
        """Comma-separated names ('all': `everything`) -> the checked names, in their own
        spelling, sorted and unique."""
        from cases.limits import check_count

        names = [part.strip() for spec in specs for part in str(spec).split(",") if part.strip()]
        if "all" in names:
            names = [n for n in names if n != "all"] + list(self.everything())
        if not names:
            raise CaseError(f"no {self.parameter} names given")
        names = sorted({self.check(name) for name in names})
        check_count(f"{self.option} {','.join(map(str, specs))}", len(names), force)
        return names
