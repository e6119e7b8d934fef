"""Every name the framework's prompt scripts import at module level resolves inside the shim, with
the behaviour the scripts rely on; basf2 and ROOT are stand-ins only where the framework is missing."""

import json
import subprocess
import sys

import pytest

from b2cal_assets.caf.shim import ScriptNamespace
from b2cal_assets.domain.framework_required import FrameworkRequired
from b2cal_assets.domain.iov import ExpRun, IoV
from b2cal_assets_tests.domain.scriptdir import write

IMPORTS = {
    "prompt": ["CalibrationSettings", "INPUT_DATA_FILTERS", "ValidationSettings"],
    "prompt.validation": ["ValidationSettings"],
    "prompt.utils": [
        "ExpRun", "IoV", "events_in_basf2_file", "filter_by_max_events_per_run", "filter_by_max_files_per_run",
        "filter_by_select_max_events_from_files", "group_files_by_iov",
    ],
    "caf.framework": ["CAF", "Algorithm", "Calibration", "CentralDatabase", "Collection", "LocalDatabase"],
    "caf.strategies": ["SequentialBoundaries", "SequentialRunByRun", "SimpleRunByRun", "SingleIOV", "AlgorithmStrategy"],
    "caf.utils": [
        "IoV", "ExpRun", "vector_from_runs", "runs_from_vector", "runs_overlapping_iov", "split_runs_by_exp",
        "find_gaps_in_iov_list", "iov_from_runs", "find_run_lists_from_boundaries", "pairwise", "grouper",
        "LocalDatabase", "CentralDatabase", "AlgResult", "IoV_Result", "temporary_workdir", "decode_json_string",
    ],
    "caf.backends": [
        "Local", "Batch", "LSF", "PBS", "HTCondor", "Job", "MaxFilesSplitter", "MaxSubjobsSplitter",
        "ArgumentsSplitter", "SubjobSplitter", "Backend",
    ],
    "basf2": [
        "B2DEBUG", "B2INFO", "B2RESULT", "B2WARNING", "B2ERROR", "B2FATAL", "LogLevel", "set_log_level",
        "create_path", "register_module", "set_module_parameters", "conditions", "Path", "Module",
        "AfterConditionPath", "process", "find_file", "logging",
    ],
}


def _import_all(tmp_path):
    lines = [f"from {module} import {', '.join(names)}" for module, names in IMPORTS.items()]
    lines += ["import ROOT", "from ROOT import Belle2", "from ROOT.Belle2 import BeamSpotAlgorithm", "import caf.backends"]
    write(tmp_path, "caf_names.py", "\n".join(lines) + "\n")
    return ScriptNamespace(tmp_path).import_module("prompt.calibrations.caf_names")


def test_every_module_level_name_of_the_real_scripts_imports(tmp_path):
    module = _import_all(tmp_path)
    for names in IMPORTS.values():
        for name in names:
            assert getattr(module, name) is not None, name


def test_caf_utils_types_are_the_ones_the_loop_passes(tmp_path):
    module = _import_all(tmp_path)
    assert module.IoV is IoV and module.ExpRun is ExpRun
    assert module.vector_from_runs([ExpRun(1, 2)])[0].second == 2
    assert module.IoV_Result(IoV(1, 1, 1, 1), module.AlgResult.OK).result == "ok"


def test_strategies_are_classes_a_calibration_accepts(tmp_path):
    module = _import_all(tmp_path)
    from b2cal_assets.caf.strategies import Strategy

    def collect(path, ctx):
        return {}

    def algorithm(arrays, ctx):
        return None

    cal = module.Calibration(name="x", collector=collect, algorithm=algorithm, input_files={"a.root": ExpRun(1, 1)})
    assert cal.strategy is Strategy.SINGLE_IOV and cal.strategies == [module.SingleIOV]
    for cls, kind in [
        (module.SequentialBoundaries, Strategy.SEQUENTIAL_BOUNDARIES),
        (module.SimpleRunByRun, Strategy.SIMPLE_RUN_BY_RUN),
        (module.SequentialRunByRun, Strategy.RUN_BY_RUN),
    ]:
        cal.strategies = cls
        assert cal.strategy is kind and cal.algorithms[0].strategy is cls
    assert module.SequentialRunByRun.allowed_granularities == ["run"]
    with pytest.raises(ValueError, match="unknown strategy 'best'"):
        cal.strategies = "best"


def test_a_calibration_in_the_frameworks_form(tmp_path):
    module = _import_all(tmp_path)
    basf2 = sys.modules.get("basf2")  # the stand-in is gone once the namespace is left
    assert basf2 is None or not getattr(basf2, "__b2cal_standin__", False)
    with ScriptNamespace(tmp_path).activate():
        import basf2

        collector = basf2.register_module("CDCCalibrationCollector", granularity="all")
        path = basf2.create_path()
        path.add_module("RootInput", entrySequences=["0:100"])
        basf2.set_module_parameters(path, "RootInput", entrySequences=["0:5"])
        assert path.modules()[0].params == {"entrySequences": ["0:5"]}
        with pytest.raises(KeyError, match="No module named 'Nope'"):
            basf2.set_module_parameters(path, "Nope", x=1)
    first = module.Calibration("tz0")
    first.add_collection(
        "hadron_calib",
        module.Collection(collector=collector, input_files=["a.root", "b.root"], pre_collector_path=path,
                          max_files_per_collector_job=1, backend_args={"request_memory": "4 GB"}),
    )
    second = module.Calibration("tw0", collector="CDCCalibrationCollector", input_files="c.root")
    second.depends_on(first)
    second.max_iterations = 0
    assert second.dependencies == [first] and first.future_dependencies == [second]
    assert second.collector.name() == "CDCCalibrationCollector" and second.input_files == ["c.root"]
    assert second.max_iterations == 1  # the framework's 0 ("no further iterations") runs once
    assert first.collections["hadron_calib"].max_files_per_collector_job == 1
    assert module.Collection().max_collector_jobs == 1000  # the framework's default splitter
    with pytest.raises(ValueError, match="already exists"):
        first.add_collection("hadron_calib", module.Collection())
    with pytest.raises(ValueError, match="Cannot set both"):
        module.Collection(max_files_per_collector_job=1, max_collector_jobs=2)
    with pytest.raises(FrameworkRequired, match="collector is the framework module 'CDCCalibrationCollector'"):
        second.check_runnable()
    caf = module.CAF()
    caf.add_calibration(first)
    with pytest.raises(ValueError, match="already in this CAF"):
        caf.add_calibration(first)


def test_databases_and_backends(tmp_path):
    module = _import_all(tmp_path)
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "database.txt").write_text("")
    local = module.LocalDatabase(str(tmp_path / "db" / "database.txt"))
    assert local.payload_dir == (tmp_path / "db").resolve() and local.db_type == "local"
    with pytest.raises(ValueError, match="does not exist"):
        module.LocalDatabase(str(tmp_path / "missing.txt"))
    assert module.CentralDatabase("data_prompt").global_tag == "data_prompt"
    assert module.MaxSubjobsSplitter(max_subjobs=4).split([str(i) for i in range(11)]) == [
        ["0", "1", "2"], ["3", "4", "5"], ["6", "7", "8"], ["9", "10"],
    ]
    assert module.LSF.default_global_job_limit == 15000 and module.HTCondor.default_global_job_limit == 10000
    assert module.Local(max_processes=4).max_processes == 4


def test_root_stand_in_loads_and_says_what_needs_the_framework(tmp_path):
    module = _import_all(tmp_path)
    module.ROOT.gROOT.SetBatch(True)  # plotting set-up is harmless
    with pytest.raises(FrameworkRequired, match=r"ROOT\.Belle2\.CDC\.T0CalibrationAlgorithm is a C\+\+ class"):
        module.Belle2.CDC.T0CalibrationAlgorithm()
    with pytest.raises(FrameworkRequired, match=r"ROOT\.Belle2\.BeamSpotAlgorithm"):
        module.BeamSpotAlgorithm()


def test_b2fatal_stops_the_script_with_its_message(tmp_path):
    module = _import_all(tmp_path)
    with pytest.raises(RuntimeError, match="not enough events"):
        module.B2FATAL("not enough events")


def test_the_real_basf2_is_used_where_it_is_installed(tmp_path):
    """Where ``import basf2`` works, the shim does not shadow it."""
    fake = tmp_path / "framework"
    write(fake, "basf2.py", "REAL = True\ndef B2INFO(*a):\n    pass\n")
    write(tmp_path / "cals", "caf_x.py", "import basf2\nimport ROOT\nFLAGS = [getattr(basf2, 'REAL', False)]\n")
    code = (
        "import json, sys\n"
        "from b2cal_assets.caf.shim import ScriptNamespace\n"
        "m = ScriptNamespace(sys.argv[1]).import_module('prompt.calibrations.caf_x')\n"
        "print(json.dumps(m.FLAGS + [getattr(m.ROOT, '__b2cal_standin__', False)]))\n"
    )
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cals")], capture_output=True, text=True,
                         check=True, env=env)
    assert json.loads(out.stdout) == [True, True]  # the real basf2; ROOT still stood in for
