"""cDST producers for the tests, imported INSIDE the batch jobs (``B2CAL_CDST_PRODUCER``): the toy
reconstruction, made to fail once or for good by marker files beside a raw file."""

from __future__ import annotations

from pathlib import Path

from b2cal_assets_tests.defs import toy

FAIL_ONCE = ".fail_once"  # <raw file>.fail_once: the job's first try fails
BROKEN = ".broken"  # <raw file>.broken: every try fails


def flaky_cdst(raw_files, out_dir, conditions, *, exp, run):
    """``toy.produce_cdst``, unless a marker beside one of ``raw_files`` says to fail."""
    out_dir = Path(out_dir)
    for raw in raw_files:
        if Path(raw + BROKEN).exists():
            raise RuntimeError(f"{raw} is broken (test marker)")
        tried = out_dir.parent / "tried"
        if Path(raw + FAIL_ONCE).exists() and not tried.exists():
            tried.write_text("1")
            raise RuntimeError(f"{raw}: first try fails (test marker)")
    return toy.produce_cdst(raw_files, out_dir, conditions, exp=exp, run=run)
