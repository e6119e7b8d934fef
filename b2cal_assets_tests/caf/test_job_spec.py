"""The spec files of the site's jobs (collector subjobs, cDST jobs): what the job reads is what the
orchestrator wrote, and a job started with another command line says how to start it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from b2cal_assets.caf import cdst_job, subjob
from b2cal_assets.caf.cdst_job import CdstJobSpec
from b2cal_assets.caf.subjob import SubjobSpec
from b2cal_assets.domain.iov import IoV

SUBJOB = SubjobSpec(
    script_file=Path("/cal/caf_toy.py"),
    calibrations_dir=None,
    calibration="toy",
    input_data={"hadron": {"/d/r1.root": IoV(1, 1, 1, 1)}},
    requested_iov=IoV(1, 1, -1, -1),
    expert_config={"bins": 5},
    iteration=2,
    files=["/d/r1.root"],
    conditions_chain=[Path("/db/a"), Path("/db/b")],
    output=Path("/w/collected.npz"),
)
CDST = CdstJobSpec(
    producer="toy:produce_cdst",
    data_tag="hadron",
    exp=1,
    run=3,
    files=["/d/r3.root"],
    conditions_chain=[Path("/db/a")],
    out_dir=Path("/w/cdst"),
    outputs=Path("/w/cdst_outputs.json"),
)


@pytest.mark.parametrize("spec", [SUBJOB, CDST], ids=["subjob", "cdst"])
def test_a_spec_file_reads_back_as_the_spec_written(spec):
    text = spec.to_json()
    assert type(spec).from_json(text) == spec
    assert text == json.dumps(json.loads(text), indent=1)  # the file's layout: one-space indent
    assert json.loads(text)["conditions_chain"] == [str(p) for p in spec.conditions_chain]


def test_the_subjobs_file_keeps_its_keys_for_jobs_already_at_the_site():
    assert list(json.loads(SUBJOB.to_json())) == [
        "script_file", "calibrations_dir", "calibration", "input_data", "requested_iov", "expert_config",
        "iteration", "files", "conditions_chain", "output",
    ]  # fmt: skip
    assert list(json.loads(CDST.to_json())) == [
        "producer", "data_tag", "exp", "run", "files", "conditions_chain", "out_dir", "outputs",
    ]  # fmt: skip


@pytest.mark.parametrize("module", [subjob, cdst_job], ids=["subjob", "cdst"])
def test_a_job_started_without_its_one_spec_file_says_how_to_start_it(module, capsys):
    assert module.main([]) == 2
    assert module.main(["a.json", "b.json"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"usage: python -m {module.__name__} SPEC.json"] * 2
