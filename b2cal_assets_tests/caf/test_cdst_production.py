"""cDST production as batch jobs on the local backend: one job per run (or chunk of files), the
conditions applied inside the job, each job's cDSTs handed over as it is done, a failed job retried,
and a second production skipping the jobs whose cDSTs are registered."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import uproot

from b2cal_assets.backends.local import LocalBackend
from b2cal_assets.backends.manager import RetryPolicy, SubmitPolicy
from b2cal_assets.backends.wrapper import EXIT_CODE_FILE, read_exit_code
from b2cal_assets.caf.cdst_job import CDST_OUTPUTS_FILE, CdstJobSpec, CdstOutput, events_in, run_cdst_job
from b2cal_assets.caf.cdst_production import (
    CdstFailed,
    CdstProduction,
    CdstRun,
    planned_jobs,
    producer_root,
    run_cdst_jobs,
)
from b2cal_assets.caf.localdb import write_outputdb
from b2cal_assets.domain.iov import IoV
from b2cal_assets_tests.caf import cdst_producers
from b2cal_assets_tests.defs import toy

PRODUCER = "b2cal_assets_tests.caf.cdst_producers:flaky_cdst"
FAST = SubmitPolicy(poll_interval_s=0.05, forgotten_grace_s=5.0)
MEAN = 1.25  # ToyA's mean in the upstream payloads: the cDST holds y - MEAN


@pytest.fixture
def upstream(tmp_path) -> Path:
    outputdb = tmp_path / "upstream" / "outputdb"
    write_outputdb(outputdb, [], [("ToyA", IoV(0, 0, -1, -1), {"mean": np.asarray([MEAN])})])
    return outputdb


def _runs(tmp_path: Path, runs: range, copies: int = 1) -> list[CdstRun]:
    """``copies`` raw files per run of the tag ``hadron_calib``."""
    by_run: dict[int, list[str]] = {}
    for c in range(copies):
        for f in toy.generate(tmp_path / f"raw{c}", runs, tags=("hadron_calib",), events=200):
            by_run.setdefault(f.run, []).append(f.path)
    return [CdstRun("hadron_calib", 1, run, tuple(files)) for run, files in sorted(by_run.items())]


def _production(tmp_path, upstream, runs, **kwargs) -> CdstProduction:
    return CdstProduction(
        producer=PRODUCER, runs=runs, conditions_chain=[upstream], workdir=tmp_path / "cdst", **kwargs
    )


def _y(paths) -> np.ndarray:
    return np.concatenate([uproot.open(p)["events"]["y"].array(library="np") for p in paths])


def test_one_job_per_run_applies_the_upstream_payloads_and_hands_each_cdst_over_as_its_job_ends(
    tmp_path, upstream
):
    runs = _runs(tmp_path, range(1, 4))
    production = _production(tmp_path, upstream, runs)
    jobs = planned_jobs(production)
    seen: list[tuple[CdstOutput, list[bool]]] = []

    def on_output(output: CdstOutput) -> None:
        # which jobs had ended when this cDST was handed over
        seen.append((output, [read_exit_code(j.workdir) is not None for j in jobs]))

    outcome = run_cdst_jobs(
        production, LocalBackend(max_processes=1), on_output=on_output, submit_policy=FAST
    )

    assert [j.name for j in jobs] == [f"cdst.hadron_calib.e1.r{r}.0" for r in (1, 2, 3)]
    assert [(o.exp, o.run, o.data_tag) for o in outcome.outputs] == [(1, r, "hadron_calib") for r in (1, 2, 3)]
    assert [o for o, _ in seen] == outcome.outputs
    assert not all(seen[0][1]), "the first cDST was handed over only after every job had ended"
    assert outcome.skipped == 0 and {j["state"] for j in outcome.jobs} == {"done"}
    for output, part in zip(outcome.outputs, runs, strict=True):
        path = Path(output.path)
        assert path.is_file() and output.size_bytes == path.stat().st_size
        assert output.n_events == len(_y(part.files)) == 200  # counted in the file the producer wrote
        assert path.parent.name == "cdst"  # below the job's directory, not at its top
        d = uproot.open(path)["events"]["d"].array(library="np")
        np.testing.assert_allclose(d, _y(part.files) - MEAN)  # the payload applied in the job


def test_chunks_of_files_make_one_job_each_and_never_span_runs(tmp_path, upstream):
    runs = _runs(tmp_path, range(1, 3), copies=3)
    production = _production(tmp_path, upstream, runs, files_per_job=2)
    assert [(j.part.run, len(j.part.files)) for j in planned_jobs(production)] == [
        (1, 2),
        (1, 1),
        (2, 2),
        (2, 1),
    ]
    outputs: list[CdstOutput] = []
    outcome = run_cdst_jobs(production, LocalBackend(max_processes=2), on_output=outputs.append, submit_policy=FAST)
    assert len(outcome.jobs) == 4 and outputs == outcome.outputs
    assert len({o.path for o in outputs}) == 4
    by_run: dict[int, list[str]] = {}
    for o in outputs:
        by_run.setdefault(o.run, []).append(o.path)
    for part in runs:  # every raw event of a run in exactly one of its cDSTs
        d = np.concatenate([uproot.open(p)["events"]["d"].array(library="np") for p in by_run[part.run]])
        np.testing.assert_allclose(np.sort(d), np.sort(_y(part.files) - MEAN))


def test_a_failed_job_is_retried_like_a_collector_subjob(tmp_path, upstream):
    runs = _runs(tmp_path, range(1, 3))
    Path(runs[1].files[0] + cdst_producers.FAIL_ONCE).write_text("")
    outcome = run_cdst_jobs(
        _production(tmp_path, upstream, runs),
        LocalBackend(max_processes=2),
        on_output=lambda _o: None,
        submit_policy=FAST,
        retry_policy=RetryPolicy(max_retries=1, retry_delay_s=0.0),
    )
    assert [j["tries"] for j in outcome.jobs] == [1, 2]
    assert {j["state"] for j in outcome.jobs} == {"done"} and len(outcome.outputs) == 2
    retried = Path(outcome.jobs[1]["workdir"])
    assert "first try fails" in (retried / "stderr.1").read_text()  # the failed try's log is kept


def test_a_job_failing_for_good_fails_the_step_and_a_second_production_runs_only_it(tmp_path, upstream):
    runs = _runs(tmp_path, range(1, 4))
    broken = Path(runs[1].files[0] + cdst_producers.BROKEN)
    broken.write_text("")
    registered: list[CdstOutput] = []
    retry = RetryPolicy(max_retries=1, retry_delay_s=0.0)
    with pytest.raises(CdstFailed) as failed:
        run_cdst_jobs(
            _production(tmp_path, upstream, runs),
            LocalBackend(max_processes=1),
            on_output=registered.append,
            submit_policy=FAST,
            retry_policy=retry,
        )
    assert failed.value.job == "cdst.hadron_calib.e1.r2.0" and failed.value.exit_code == 1
    assert "is broken (test marker)" in failed.value.log_tail
    assert "after 2 try(ies)" in str(failed.value)
    assert sorted(o.run for o in registered) == [1, 3]  # the others' cDSTs were handed over all the same

    broken.unlink()
    first_job = Path(failed.value.jobs[0]["workdir"])
    before = (first_job / EXIT_CODE_FILE).stat().st_mtime_ns
    again: list[CdstOutput] = []
    outcome = run_cdst_jobs(
        _production(tmp_path, upstream, runs, registered=frozenset(o.path for o in registered)),
        LocalBackend(max_processes=1),
        on_output=again.append,
        submit_policy=FAST,
        retry_policy=retry,
    )
    assert outcome.skipped == 2 and [o.run for o in again] == [2]
    assert [j["name"] for j in outcome.jobs] == ["cdst.hadron_calib.e1.r2.0"]
    assert (first_job / EXIT_CODE_FILE).stat().st_mtime_ns == before  # not run again


def test_the_job_module_runs_the_named_producer_and_lists_what_it_made(tmp_path, upstream):
    (part,) = _runs(tmp_path, range(5, 6))
    spec = CdstJobSpec(
        producer="b2cal_assets_tests.defs.toy:produce_cdst",
        data_tag=part.data_tag,
        exp=part.exp,
        run=part.run,
        files=list(part.files),
        conditions_chain=[upstream],
        out_dir=tmp_path / "job" / "cdst",
        outputs=tmp_path / "job" / CDST_OUTPUTS_FILE,
    )
    assert CdstJobSpec.from_json(spec.to_json()) == spec
    (made,) = run_cdst_job(spec, log=lambda *a, **k: None)
    listed = json.loads((tmp_path / "job" / CDST_OUTPUTS_FILE).read_text())["files"]
    assert listed == [made.to_json()] and made.run == 5 and Path(made.path).is_file()
    assert made.n_events == 200


def test_the_events_of_a_cdst_are_those_of_its_basf2_tree_and_unknown_for_another_format(tmp_path):
    basf2_like = tmp_path / "basf2.root"
    with uproot.recreate(basf2_like) as f:
        f["persistent"] = {"x": np.zeros(1)}
        f["tree"] = {"x": np.zeros(7)}
    assert events_in(basf2_like) == 7
    several = tmp_path / "several.root"
    with uproot.recreate(several) as f:
        f["small"] = {"x": np.zeros(2)}
        f["tracks"] = {"x": np.zeros(5)}
    assert events_in(several) == 5
    other = tmp_path / "cdst.h5"
    other.write_bytes(b"\x89HDF\r\n")
    assert events_in(other) is None


def test_the_producers_package_travels_with_the_job_unless_it_is_b2cals_own():
    assert producer_root("b2cal_assets.demo.reconstruction:produce_cdst") is None
    assert producer_root(PRODUCER) == Path(cdst_producers.__file__).parents[1]
    assert producer_root("no_such_package_here:produce") is None  # to be installed at the site


@pytest.mark.parametrize(
    ("reference", "says"),
    [
        ("", "is not module:function"),
        ("my detector:produce", "is not module:function"),
        ("b2cal_assets_tests.defs.toy:no_such_function", "cannot be loaded"),
        ("b2cal_assets_tests.defs.toy:TRUE_MEAN", "is not a function"),
    ],
)
def test_a_producer_that_cannot_work_is_refused_before_any_job(tmp_path, upstream, reference, says):
    production = dataclasses.replace(_production(tmp_path, upstream, _runs(tmp_path, range(1, 2))), producer=reference)
    with pytest.raises(ValueError, match=says):
        run_cdst_jobs(production, LocalBackend(), on_output=lambda _o: None, submit_policy=FAST)
    assert not (tmp_path / "cdst").exists()
