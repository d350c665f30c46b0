"""What every report.md shares: value lists, the provenance footer, the atomic write."""

from __future__ import annotations

from pathlib import Path

from cases.provenance import provenance


def finish_report(out: Path, lines: list[str]) -> Path:
    """OUT/report.md: `lines`, then the provenance (written to a temporary name, then renamed)."""
    versions = provenance()
    lines = lines + ["## Provenance", "", f"git commit {versions['git_commit']}; " + ", ".join(f"{k} {v}" for k, v in versions["versions"].items()), ""]
    path = out / "report.md"
    tmp = path.with_name(".report.md.partial")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
    return path


def value_list(values) -> str:
    """Parameter values for a sentence: all of them, or the first and last of a long list."""
    return ", ".join(f"{v:g}" for v in values) if len(values) < 6 else f"{values[0]:g} .. {values[-1]:g}"
