"""b2cal-prompt-run takes the framework's b2caf-prompt-run command line and input files, so an expert
tries a prompt script locally exactly as with the framework."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import uproot

from b2cal_assets.caf.payload_io import read_payload
from b2cal_assets.caf.prompt_run import main
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.outputdb import parse_database_txt

SCRIPT = textwrap.dedent(
    '''
    """Per-run mean hit time, in the framework's style."""
    import basf2
    import numpy as np
    import uproot
    from caf.framework import AlgorithmResult, AlgorithmStatus, Calibration
    from caf.strategies import SequentialRunByRun
    from caf.utils import ExpRun
    from prompt import INPUT_DATA_FILTERS, CalibrationSettings
    from prompt.utils import filter_by_max_files_per_run

    settings = CalibrationSettings(
        name="Hit time/offset", expert_username="alice", subsystem="example", description=__doc__,
        input_data_formats=["raw"], input_data_names=["hlt_mumu"],
        input_data_filters={"hlt_mumu": [INPUT_DATA_FILTERS["Data Tag"]["mumu_tight_or_highm_calib"]]},
        expert_config={"max_files_per_run": 5, "min_entries": 50},
        produced_payloads=["HitTimeOffset"],
    )


    def collect(path, ctx):
        times = uproot.open(path)["tree"]["time"].array(library="np")
        offset = float(ctx.conditions.get("HitTimeOffset")["mean"]) if "HitTimeOffset" in ctx.conditions else 0.0
        return {"sum": np.array([times.sum()]), "count": np.array([len(times)]), "seen": np.array([offset])}


    def mean(data, ctx):
        if data["count"][0] < ctx.expert_config["min_entries"]:
            return AlgorithmResult(AlgorithmStatus.NOT_ENOUGH_DATA, message="too few hits")
        return AlgorithmResult(AlgorithmStatus.OK, {"HitTimeOffset": {"mean": data["sum"][0] / data["count"][0]}})


    def get_calibrations(input_data, **kwargs):
        config = kwargs["expert_config"]
        files = filter_by_max_files_per_run(input_data["hlt_mumu"], config["max_files_per_run"])
        basf2.B2INFO(f"{len(files)} files")
        cal = Calibration(name="hit_time", collector=collect, algorithm=mean, payload_names=("HitTimeOffset",),
                          input_files={p: ExpRun(iov.exp_low, iov.run_low) for p, iov in files.items()})
        cal.strategies = SequentialRunByRun
        return [cal]
    '''
)

SIZES = {3: [40, 30], 4: [20], 5: [90]}  # run 4 alone is too small: merged with run 5


@pytest.fixture
def expert(tmp_path, monkeypatch):
    """An expert's directory: the script, run directories of ROOT files, caf_config.json, input_data.json."""
    (tmp_path / "calibrations").mkdir()
    (tmp_path / "calibrations" / "caf_hit_time.py").write_text(SCRIPT)
    runs = []
    for run, sizes in SIZES.items():
        directory = tmp_path / "data" / "e0001" / f"r{run:05d}"
        for index, size in enumerate(sizes):
            (directory / "sub").mkdir(parents=True, exist_ok=True)
            with uproot.recreate(directory / "sub" / f"f{index}.root") as out:
                out["tree"] = {"time": np.full(size, float(run))}
        runs.append([str(directory), [1, run]])
    (tmp_path / "input_data.json").write_text(json.dumps({"hlt_mumu": runs}))
    config = {"caf_script": "caf_hit_time.py", "database_chain": [], "requested_iov": [1, 3, -1, -1],
              "backend_args": {}, "expert_config": {"min_entries": 50}}
    (tmp_path / "caf_config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", str(tmp_path / "calibrations"))
    return tmp_path


ARGS = ["Local", "caf_config.json", "input_data.json", "--max-processes", "2", "--heartbeat", "1"]


def test_runs_the_script_and_collects_each_calibrations_outputdb(expert, capsys):
    assert main([*ARGS, "--max-subjobs", "2"]) == 0
    outputdb = expert / "caf_outputdb_results" / "hit_time"
    entries = parse_database_txt((outputdb / "database.txt").read_text())
    assert [(e.name, e.iov) for e in entries] == [
        ("HitTimeOffset", IoV(1, 3, 1, 3)), ("HitTimeOffset", IoV(1, 4, -1, -1)),
    ]
    means = [float(read_payload(outputdb / f"dbstore_HitTimeOffset_rev_{e.revision}.root")["mean"]) for e in entries]
    assert means == pytest.approx([3.0, (4 * 20 + 5 * 90) / 110])
    assert (expert / "calibration_results" / "hit_time" / "0" / "collector_output").is_dir()
    assert "payloads of hit_time" in capsys.readouterr().out


def test_an_existing_output_db_is_kept_unless_asked(expert, capsys):
    (expert / "caf_outputdb_results").mkdir()
    assert main(ARGS) == 1
    assert "will not overwrite the output db" in capsys.readouterr().err
    assert main([*ARGS, "--overwrite-output-db", "--overwrite-working-dir"]) == 0
    assert (expert / "caf_outputdb_results" / "hit_time" / "database.txt").is_file()


def test_local_databases_in_the_chain_are_the_conditions(expert):
    db = expert / "upstream"
    db.mkdir()
    (db / "database.txt").write_text("")
    config = json.loads((expert / "caf_config.json").read_text())
    config["database_chain"] = [str(db)]
    config["testing_payloads"] = [str(db / "database.txt")]
    (expert / "caf_config.json").write_text(json.dumps(config))
    assert main([*ARGS, "--dry-run"]) == 0
    config["database_chain"] = ["data_prompt_rel08"]
    (expert / "caf_config.json").write_text(json.dumps(config))
    assert main([*ARGS, "--dry-run"]) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"requested_iov": [1, 3, -1]}, "caf_config.json: requested_iov: must be 4 integers"),
        ({"caf_script": "caf_nope.py"}, "caf_script 'caf_nope.py': no calibration script caf_nope.py"),
        ({"expert_config": {"min_entrie": 5}}, "expert_config: unknown key 'min_entrie'"),
        ({"database_chain": "tag"}, "database_chain: must be a list of non-empty strings"),
    ],
)
def test_a_wrong_caf_config_is_one_line_naming_the_field(expert, capsys, change, message):
    config = json.loads((expert / "caf_config.json").read_text())
    (expert / "caf_config.json").write_text(json.dumps({**config, **change}))
    assert main(ARGS) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_input_data_missing_a_name_or_a_directory(expert, capsys):
    (expert / "input_data.json").write_text(json.dumps({"hlt_hadron": []}))
    assert main(ARGS) == 1
    assert "does not contain all of the required input names; missing hlt_mumu" in capsys.readouterr().err
    (expert / "input_data.json").write_text(json.dumps({"hlt_mumu": [["/no/such/run", [1, 3]]]}))
    assert main(ARGS) == 1
    assert "hlt_mumu[0]: run directory /no/such/run does not exist" in capsys.readouterr().err


def test_pbs_is_refused_and_the_options_are_the_frameworks(expert, capsys):
    assert main(["PBS", "caf_config.json", "input_data.json", "--queue", "short"]) == 1
    assert "the PBS backend is not available in b2cal" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["Local", "caf_config.json", "input_data.json", "--max-subjobs", "2", "--max-files-per-subjob", "1"])
    assert info.value.code == 2


def test_a_failing_calibration_exits_1_with_its_reason(expert, capsys):
    config = json.loads((expert / "caf_config.json").read_text())
    config["expert_config"] = {"min_entries": 10_000}
    (expert / "caf_config.json").write_text(json.dumps(config))
    assert main(ARGS) == 1
    assert "not enough data even with all 3 run(s) merged" in capsys.readouterr().err
    assert not (expert / "caf_outputdb_results").exists()


def test_runs_as_a_command(expert):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "b2cal_assets.caf.prompt_run", *ARGS, "--dry-run"],
                          capture_output=True, text=True, env=env, cwd=expert)
    assert done.returncode == 0, done.stderr
    assert "would run hit_time over 4 file(s)" in done.stdout
