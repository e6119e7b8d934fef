import pytest

from b2cal_assets.caf.framework import Calibration
from b2cal_assets.caf.scripts import CALIBRATIONS_DIR_ENV, ScriptSet, derive_stage, load_scripts
from b2cal_assets.domain.iov import ExpRun, IoV
from b2cal_assets.domain.settings import ContractError
from b2cal_assets.domain.stages import Stage
from b2cal_assets_tests.domain.scriptdir import calibration, write

CDC_WITH_CALIBRATIONS = '''
"""CDC t0: one calibration over at most max_files_per_run files per run."""
from prompt import CalibrationSettings, INPUT_DATA_FILTERS

settings = CalibrationSettings(
    name="CDC",
    expert_username="alice",
    description=__doc__,
    input_data_formats=["raw"],
    input_data_names=["hlt_mumu"],
    input_data_filters={"hlt_mumu": [INPUT_DATA_FILTERS["Data Tag"]["mumu_tight_or_highm_calib"], "Good"]},
    expert_config={"max_files_per_run": 1, "max_iterations": 3},
    produced_payloads=["CDCTimeZeros"],
)


def get_calibrations(input_data, **kwargs):
    from caf.framework import Calibration
    from prompt.utils import ExpRun, filter_by_max_files_per_run

    config = kwargs["expert_config"]
    files = filter_by_max_files_per_run(input_data["hlt_mumu"], config["max_files_per_run"])
    requested = kwargs["requested_iov"]
    return [
        Calibration(
            name=f"CDC_from_{requested.exp_low}_{requested.run_low}",
            collector=lambda path, ctx: {},
            algorithm=lambda data, ctx: None,
            input_files={path: ExpRun(iov.exp_low, iov.run_low) for path, iov in files.items()},
            payload_names=("CDCTimeZeros",),
            max_iterations=config["max_iterations"],
        )
    ]
'''


def names(scripts: ScriptSet) -> list[str]:
    return list(scripts.calibrations)


def errors_by_file(scripts: ScriptSet) -> dict[str, tuple[str, str]]:
    return {e.file.rsplit("/", 1)[-1]: (e.field, e.message) for e in scripts.errors}


def test_good_scripts_load_in_run_order_with_stages(tmp_path):
    write(tmp_path, "caf_svd.py", calibration("SVD"))
    write(tmp_path, "caf_cdc.py", calibration("CDC"))
    write(
        tmp_path,
        "caf_align.py",
        calibration("Alignment", stage="alignment", depends_on=[("caf_cdc", "cdc"), ("caf_svd", "svd")]),
    )
    write(tmp_path, "caf_ecl.py", calibration("ECL", formats=["cdst"], depends_on=[("caf_align", "al")]))
    write(tmp_path, "caf_pid.py", calibration("PID", formats=["mdst", "cdst"], expert="carol"))
    write(tmp_path, "_helpers.py", "raise RuntimeError('helpers are not scripts')\n")
    scripts = load_scripts(tmp_path)
    assert scripts.errors == []
    assert names(scripts) == ["CDC", "SVD", "Alignment", "ECL", "PID"]
    stages = {name: script.stage for name, script in scripts.calibrations.items()}
    assert stages == {
        "CDC": Stage.PRE_TRACKING,
        "SVD": Stage.PRE_TRACKING,
        "Alignment": Stage.ALIGNMENT,
        "ECL": Stage.POST_TRACKING,
        "PID": Stage.ANALYSIS,
    }
    assert scripts.graph.upstream("Alignment") == ("CDC", "SVD")
    assert scripts["ECL"].settings.depends_on[0] is scripts["Alignment"].settings
    assert scripts["CDC"].module_name == "prompt.calibrations.caf_cdc"


def test_derived_stage_is_never_before_a_dependency(tmp_path):
    write(tmp_path, "caf_align.py", calibration("Alignment", stage="alignment"))
    write(tmp_path, "caf_raw.py", calibration("RawAfterAlignment", depends_on=[("caf_align", "al")]))
    write(tmp_path, "caf_pid.py", calibration("PID", formats=["udst"]))
    write(tmp_path, "caf_late.py", calibration("RawAfterPID", depends_on=[("caf_pid", "pid")]))
    scripts = load_scripts(tmp_path)
    assert scripts["RawAfterAlignment"].stage is Stage.ALIGNMENT  # raw data over an alignment's payloads
    assert scripts["RawAfterPID"].stage is Stage.ANALYSIS


def test_the_alignment_is_the_script_with_subsystem_alignment_and_what_needs_it_on_raw_data(tmp_path):
    """Real scripts never declare a stage: "Full VXD and CDC Alignment" is found by its subsystem."""
    write(tmp_path, "caf_cdc.py", calibration("CDC Tracking", subsystem="cdc"))
    write(
        tmp_path,
        "caf_vxdcdc_alignment.py",
        calibration("Full VXD and CDC Alignment", subsystem="alignment", depends_on=[("caf_cdc", "cdc")]),
    )
    align = ("caf_vxdcdc_alignment", "align")
    write(tmp_path, "caf_klm_alignment.py", calibration("KLM alignment", subsystem="klm", depends_on=[align]))
    write(tmp_path, "caf_ecl.py", calibration("ECL", subsystem="ecl", formats=["cdst"], depends_on=[align]))
    write(tmp_path, "caf_top.py", calibration("TOP", subsystem="top", formats=["raw", "cdst"], depends_on=[align]))
    write(tmp_path, "caf_declared.py", calibration("Declared", subsystem="alignment", stage="pre_tracking"))
    scripts = load_scripts(tmp_path)
    assert scripts.errors == []
    stages = {name: script.stage.value for name, script in scripts.calibrations.items()}
    assert stages == {
        "CDC Tracking": "pre_tracking",
        "Declared": "pre_tracking",  # an explicit module-level stage wins
        "Full VXD and CDC Alignment": "alignment",
        "KLM alignment": "alignment",
        "ECL": "post_tracking",
        "TOP": "post_tracking",
    }


def test_an_alignment_subsystem_after_a_post_tracking_dependency_stays_after_it():
    assert derive_stage(frozenset({"raw"}), [Stage.POST_TRACKING], "alignment") is Stage.POST_TRACKING
    assert derive_stage(frozenset({"raw"}), [], "alignment") is Stage.ALIGNMENT
    assert derive_stage(frozenset({"cdst"}), [], "alignment") is Stage.POST_TRACKING


def test_derive_stage_from_formats():
    assert derive_stage(frozenset({"raw"}), []) is Stage.PRE_TRACKING
    assert derive_stage(frozenset({"raw", "cdst"}), []) is Stage.POST_TRACKING
    assert derive_stage(frozenset({"udst"}), []) is Stage.ANALYSIS
    assert derive_stage(frozenset({"raw"}), [Stage.LOCAL]) is Stage.PRE_TRACKING


def test_declared_stage_before_a_dependency_is_an_error(tmp_path):
    write(tmp_path, "caf_ecl.py", calibration("ECL", formats=["cdst"]))
    write(
        tmp_path, "caf_early.py", calibration("Early", stage="pre_tracking", depends_on=[("caf_ecl", "ecl")])
    )
    write(tmp_path, "caf_bad_stage.py", calibration("Odd", stage="tracking"))
    scripts = load_scripts(tmp_path)
    assert names(scripts) == ["ECL"]
    errors = errors_by_file(scripts)
    assert errors["caf_early.py"] == (
        "stage",
        "declared stage 'pre_tracking' runs before the stage 'post_tracking' of its dependency 'ECL'",
    )
    assert (
        errors["caf_bad_stage.py"][0] == "stage"
        and "unknown stage 'tracking'" in errors["caf_bad_stage.py"][1]
    )


def test_broken_scripts_never_take_the_good_ones_down(tmp_path):
    write(tmp_path, "caf_good.py", calibration("Good"))
    write(tmp_path, "caf_syntax.py", "from prompt import CalibrationSettings\nsettings = (\n")
    write(tmp_path, "caf_import.py", "import numpy\nimport no_such_package_here\n")
    write(tmp_path, "caf_raises.py", "x = 1\nraise RuntimeError('no database connection')\n")
    write(tmp_path, "caf_exit.py", "import sys\nsys.exit(3)\n")
    write(tmp_path, "caf_nosettings.py", "def get_calibrations(input_data, **kwargs):\n    return []\n")
    write(
        tmp_path,
        "caf_wrongsettings.py",
        "settings = {'name': 'x'}\ndef get_calibrations(d, **k):\n    return []\n",
    )
    write(tmp_path, "caf_nofunction.py", calibration("NoFunction").split("\ndef get_calibrations")[0])
    write(tmp_path, "caf_badsettings.py", calibration("B" * 70))
    scripts = load_scripts(tmp_path)
    assert names(scripts) == ["Good"]
    errors = errors_by_file(scripts)
    assert errors["caf_syntax.py"][0] == "import" and "SyntaxError" in errors["caf_syntax.py"][1]
    assert errors["caf_import.py"] == (
        "import",
        "line 2: ModuleNotFoundError: No module named 'no_such_package_here'",
    )
    assert errors["caf_raises.py"] == ("import", "line 2: RuntimeError: no database connection")
    assert errors["caf_exit.py"] == ("import", "line 2: SystemExit: 3")
    assert errors["caf_nosettings.py"][0] == "settings"
    assert errors["caf_wrongsettings.py"] == (
        "settings",
        "`settings` is dict, not a CalibrationSettings (from prompt import CalibrationSettings)",
    )
    assert errors["caf_nofunction.py"][0] == "get_calibrations"
    field, message = errors["caf_badsettings.py"]
    assert field == "name" and message.startswith("line 3: ") and "70 characters long" in message


def test_duplicate_names_leave_out_both_and_their_dependents(tmp_path):
    write(tmp_path, "caf_a.py", calibration("Same"))
    write(tmp_path, "caf_b.py", calibration("Same"))
    write(tmp_path, "caf_c.py", calibration("Needs", depends_on=[("caf_a", "a")]))
    write(tmp_path, "caf_d.py", calibration("Fine"))
    scripts = load_scripts(tmp_path)
    assert names(scripts) == ["Fine"]
    errors = errors_by_file(scripts)
    assert errors["caf_a.py"] == (
        "name",
        "calibration name 'Same' is used by several scripts (caf_a.py, caf_b.py); names must be unique",
    )
    assert errors["caf_b.py"][0] == "name"
    assert errors["caf_c.py"] == (
        "depends_on",
        "depends on 'Same' (caf_b.py), which was left out (see its error)",
    )


def test_dependents_of_a_broken_script_are_each_reported(tmp_path):
    write(tmp_path, "caf_base.py", calibration("Base", formats=["dst"]))
    write(tmp_path, "caf_mid.py", calibration("Mid", depends_on=[("caf_base", "base")]))
    write(tmp_path, "caf_top.py", calibration("Top", depends_on=[("caf_mid", "mid")]))
    write(tmp_path, "caf_other.py", calibration("Other"))
    scripts = load_scripts(tmp_path)
    assert names(scripts) == ["Other"]
    errors = errors_by_file(scripts)
    assert errors["caf_base.py"] == (
        "input_data_formats",
        "line 3: 'dst' is not a data format; use cdst, mdst, raw, udst",
    )
    assert (
        errors["caf_mid.py"][0] == "import"
        and "importing caf_base.py failed at its line 3" in errors["caf_mid.py"][1]
    )
    assert errors["caf_top.py"][0] == "import" and "caf_base.py" in errors["caf_top.py"][1]


def test_unknown_dependency_and_cycles(tmp_path):
    write(
        tmp_path,
        "caf_ghost.py",
        """
        from prompt import CalibrationSettings
        ghost = CalibrationSettings("Ghost", "x", "cdc", None, ["raw"], ["hlt"])
        settings = CalibrationSettings("Haunted", "x", "cdc", None, ["raw"], ["hlt"], depends_on=[ghost])
        def get_calibrations(input_data, **kwargs):
            return []
        """,
    )
    # Scripts that import each other's settings are a dependency cycle.
    write(tmp_path, "caf_p.py", calibration("P", depends_on=[("caf_q", "q")]))
    write(tmp_path, "caf_q.py", calibration("Q", depends_on=[("caf_p", "p")]))
    write(tmp_path, "caf_ok.py", calibration("OK"))
    scripts = load_scripts(tmp_path)
    assert names(scripts) == ["OK"]
    errors = errors_by_file(scripts)
    assert errors["caf_ghost.py"] == (
        "depends_on",
        "depends on 'Ghost', which no script in the calibrations directory defines",
    )
    for file in ("caf_p.py", "caf_q.py"):
        assert errors[file][0] == "import" and "dependency cycle" in errors[file][1]


def test_validation_scripts_pair_by_name(tmp_path):
    write(tmp_path, "caf_cdc.py", calibration("CDC", expert_config={"bins": 10}))
    write(tmp_path, "caf_ecl.py", calibration("ECL"))
    write(
        tmp_path,
        "validations/val_cdc.py",
        """
        from prompt.validation import ValidationSettings
        settings = ValidationSettings(name="CDC", description="t0 plots", download_files=["*.pdf"],
                                      expert_config={"bins": 50})
        def run_validation(job_path, input_data_path, requested_iov, expert_config):
            from caf.utils import IoV
            return [str(job_path), requested_iov == IoV(26, 0, -1, -1), expert_config]
        """,
    )
    write(
        tmp_path,
        "validations/val_orphan.py",
        "from prompt.validation import ValidationSettings\n"
        "settings = ValidationSettings('TOP', 'plots')\n"
        "def run_validation(job_path, input_data_path, requested_iov, expert_config):\n    pass\n",
    )
    write(
        tmp_path,
        "validations/val_norun.py",
        "from prompt.validation import ValidationSettings\nsettings = ValidationSettings('ECL', 'x')\n",
    )
    scripts = load_scripts(tmp_path)
    assert names(scripts) == ["CDC", "ECL"]
    cdc = scripts["CDC"]
    assert cdc.validation is not None and cdc.validation.settings.download_files == ("*.pdf",)
    assert scripts["ECL"].validation is None
    errors = errors_by_file(scripts)
    assert errors["val_orphan.py"] == ("name", "names no calibration: 'TOP' (the calibrations are CDC, ECL)")
    assert errors["val_norun.py"][0] == "run_validation"


def test_get_calibrations_runs_the_script_with_merged_expert_config(tmp_path):
    write(tmp_path, "caf_cdc.py", CDC_WITH_CALIBRATIONS)
    scripts = load_scripts(tmp_path)
    cdc = scripts["CDC"]
    input_data = {
        "hlt_mumu": {"r1a.root": IoV(26, 1, 26, 1), "r1b.root": (26, 1, 26, 1), "r2.root": IoV(26, 2, 26, 2)}
    }
    (calib,) = cdc.get_calibrations(input_data, requested_iov=IoV(26, 0, -1, -1))
    assert isinstance(calib, Calibration)
    assert calib.name == "CDC_from_26_0"
    assert calib.input_files == {"r1a.root": ExpRun(26, 1), "r2.root": ExpRun(26, 2)}
    assert calib.max_iterations == 3
    (more,) = cdc.get_calibrations(
        input_data, requested_iov=(26, 0, -1, -1), expert_config={"max_files_per_run": 2}
    )
    assert set(more.input_files) == {"r1a.root", "r1b.root", "r2.root"}
    with pytest.raises(ContractError, match="unknown key 'max_file_per_run'"):
        cdc.get_calibrations(input_data, expert_config={"max_file_per_run": 2})
    with pytest.raises(ContractError, match="input_data: 'bhabha' not among"):
        cdc.get_calibrations({"bhabha": {}})


def test_get_calibrations_must_return_calibrations(tmp_path):
    write(tmp_path, "caf_x.py", calibration("X").replace("return []", "return None"))
    with pytest.raises(
        ContractError, match=r"get_calibrations: caf_x\.py returned None; it must return a list"
    ):
        load_scripts(tmp_path)["X"].get_calibrations({})


def test_to_json_shape(tmp_path):
    write(
        tmp_path,
        "caf_cdc.py",
        calibration("CDC", data_names=["hlt_mumu", "cosmic"], subsystem="cdc").replace(
            "expert_config={})", "expert_config={}, produced_payloads=['CDCTimeZeros'])"
        ),
    )
    write(
        tmp_path,
        "validations/cdc.py",
        """
        from prompt.validation import ValidationSettings
        settings = ValidationSettings(name="CDC", description="plots", download_files=[], expert_config={})
        def run_validation(job_path, input_data_path, requested_iov, expert_config):
            pass
        """,
    )
    write(
        tmp_path,
        "caf_ecl.py",
        calibration("ECL", formats=["cdst", "raw"], depends_on=[("caf_cdc", "cdc")], expert="bob"),
    )
    write(tmp_path, "caf_bad.py", "raise ValueError('boom')\n")
    document = load_scripts(tmp_path).to_json()
    assert document == {
        "calibrations": [
            {
                "name": "CDC",
                "file": str((tmp_path / "caf_cdc.py").resolve()),
                "stage": "pre_tracking",
                "depends_on": [],
                "input_data_formats": ["raw"],
                "input_data_names": ["cosmic", "hlt_mumu"],
                "expert_username": "alice",
                "subsystem": "cdc",
                "produced_payloads": ["CDCTimeZeros"],
                "validation": str((tmp_path / "validations" / "cdc.py").resolve()),
            },
            {
                "name": "ECL",
                "file": str((tmp_path / "caf_ecl.py").resolve()),
                "stage": "post_tracking",
                "depends_on": ["CDC"],
                "input_data_formats": ["cdst", "raw"],
                "input_data_names": ["hlt_mumu"],
                "expert_username": "bob",
                "subsystem": None,
                "produced_payloads": [],
                "validation": None,
            },
        ],
        "errors": [
            {
                "file": str((tmp_path / "caf_bad.py").resolve()),
                "field": "import",
                "message": "line 1: ValueError: boom",
                "needs_framework": False,
            }
        ],
        "warnings": [],  # only a manifest's scripts can have changed since it was written
    }


def test_reloading_picks_up_edits(tmp_path):
    path = write(tmp_path, "caf_cdc.py", calibration("CDC"))
    assert load_scripts(tmp_path)["CDC"].settings.expert_username == "alice"
    path.write_text(calibration("CDC", expert="dave"))
    assert load_scripts(tmp_path)["CDC"].settings.expert_username == "dave"


def test_default_directory_from_the_environment(tmp_path, monkeypatch):
    write(tmp_path, "caf_env.py", calibration("FromEnv"))
    monkeypatch.setenv(CALIBRATIONS_DIR_ENV, str(tmp_path))
    assert names(load_scripts()) == ["FromEnv"]


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=f"does not exist; pass another directory or set {CALIBRATIONS_DIR_ENV}"
    ):
        load_scripts(tmp_path / "nope")


def test_validations_beside_calibrations_in_the_frameworks_layout(tmp_path):
    """prompt/calibrations/ and prompt/validations/ side by side, as in the framework's repository."""
    write(tmp_path / "prompt" / "calibrations", "caf_cdc.py", calibration("CDC Tracking"))
    write(
        tmp_path / "prompt" / "validations",
        "cdc_tracking_validation.py",
        """
        from prompt import ValidationSettings
        from prompt.calibrations.caf_cdc import settings as cdc
        settings = ValidationSettings(name=cdc.name, description="t0 plots", download_files=[], expert_config={})
        def run_validation(job_path, input_data_path, requested_iov, expert_config):
            pass
        """,
    )
    scripts = load_scripts(tmp_path / "prompt" / "calibrations")
    assert scripts.errors == []
    validation = scripts["CDC Tracking"].validation
    assert validation is not None
    assert validation.file == (tmp_path / "prompt" / "validations" / "cdc_tracking_validation.py").resolve()
    assert validation.module_name == "prompt.validations.cdc_tracking_validation"
    # the inner folder, where there is one, is still the place
    write(tmp_path / "prompt" / "calibrations" / "validations", "other.py", "x = 1\n")
    inner = load_scripts(tmp_path / "prompt" / "calibrations")
    assert inner["CDC Tracking"].validation is None
    assert [e.field for e in inner.errors] == ["settings"]
