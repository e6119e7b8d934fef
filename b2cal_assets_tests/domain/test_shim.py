import json
import subprocess
import sys
import threading

import pytest

from b2cal_assets.caf.framework import Calibration
from b2cal_assets.caf.shim import ScriptNamespace, load_script_module, script_imports
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.settings import CalibrationSettings
from b2cal_assets_tests.domain.scriptdir import calibration, write


def test_framework_names_import_unchanged(tmp_path):
    write(
        tmp_path,
        "caf_all.py",
        """
        from prompt import CalibrationSettings, INPUT_DATA_FILTERS
        from prompt.validation import ValidationSettings
        from prompt.utils import ExpRun, filter_by_max_files_per_run
        from caf.utils import IoV
        from caf.framework import Calibration
        from caf import strategies
        names = (CalibrationSettings, INPUT_DATA_FILTERS, ValidationSettings, ExpRun, IoV, Calibration, strategies)
        """,
    )
    module = ScriptNamespace(tmp_path).import_module("prompt.calibrations.caf_all")
    assert module.Calibration is Calibration
    assert module.CalibrationSettings is CalibrationSettings
    assert module.IoV is IoV
    assert module.INPUT_DATA_FILTERS["Magnet"]["On"] == "On"


def test_a_script_imports_another_scripts_settings_as_the_same_object(tmp_path):
    write(tmp_path, "caf_cdc.py", calibration("CDC"))
    write(tmp_path, "caf_ecl.py", calibration("ECL", depends_on=[("caf_cdc", "cdc")]))
    namespace = ScriptNamespace(tmp_path)
    cdc = namespace.import_module("prompt.calibrations.caf_cdc")
    ecl = namespace.import_module("prompt.calibrations.caf_ecl")
    assert ecl.settings.depends_on[0] is cdc.settings
    assert ecl.cdc is cdc.settings


def test_names_exist_only_while_active(tmp_path):
    write(tmp_path, "caf_cdc.py", calibration("CDC"))
    namespace = ScriptNamespace(tmp_path)
    namespace.import_module("prompt.calibrations.caf_cdc")
    assert not any(name == "prompt" or name.startswith(("prompt.", "caf.")) for name in sys.modules)
    with pytest.raises(ModuleNotFoundError):
        import prompt  # noqa: F401
    with namespace.activate():
        from prompt.calibrations.caf_cdc import settings

        assert settings.name == "CDC"


def test_two_directories_do_not_see_each_others_scripts(tmp_path):
    write(tmp_path / "one", "caf_x.py", calibration("X one"))
    write(tmp_path / "two", "caf_x.py", calibration("X two"))
    one, two = ScriptNamespace(tmp_path / "one"), ScriptNamespace(tmp_path / "two")
    assert one.import_module("prompt.calibrations.caf_x").settings.name == "X one"
    assert two.import_module("prompt.calibrations.caf_x").settings.name == "X two"
    with one.activate():
        with two.activate():  # re-entrant, and the inner directory wins
            from prompt.calibrations import caf_x

            assert caf_x.settings.name == "X two"
        from prompt.calibrations import caf_x

        assert caf_x.settings.name == "X one"


def test_missing_script_says_where_it_looked(tmp_path):
    write(tmp_path, "caf_ecl.py", calibration("ECL", depends_on=[("caf_nope", "nope")]))
    with pytest.raises(ModuleNotFoundError, match=r"no script .*caf_nope\.py"):
        ScriptNamespace(tmp_path).import_module("prompt.calibrations.caf_ecl")


def test_unknown_framework_module_lists_what_is_provided(tmp_path):
    write(tmp_path, "caf_x.py", "import caf.state_machines\n")
    with pytest.raises(ModuleNotFoundError, match=r"'caf.state_machines': b2cal provides prompt, prompt.utils"):
        ScriptNamespace(tmp_path).import_module("prompt.calibrations.caf_x")


def test_threads_each_see_their_own_directory(tmp_path):
    for index in range(4):
        write(tmp_path / f"d{index}", "caf_x.py", calibration(f"X{index}"))
    seen: dict[int, str] = {}

    def load(index: int) -> None:
        for _ in range(5):
            module = ScriptNamespace(tmp_path / f"d{index}").import_module("prompt.calibrations.caf_x")
            seen[index] = module.settings.name

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {i: f"X{i}" for i in range(4)}


def test_load_script_module_in_another_process(tmp_path):
    """A collector subjob re-loads a script by file; lazy framework imports work inside script_imports."""
    write(tmp_path, "caf_cdc.py", calibration("CDC"))
    write(
        tmp_path,
        "caf_ecl.py",
        calibration("ECL", depends_on=[("caf_cdc", "cdc")])
        + "\ndef collector_names():\n    from caf.utils import ExpRun\n    return [ExpRun.__name__, cdc.name]\n",
    )
    code = (
        "import json, sys\n"
        "from b2cal_assets.caf.shim import load_script_module, script_imports\n"
        "module = load_script_module(sys.argv[1], sys.argv[2])\n"
        "with script_imports(sys.argv[2]):\n"
        "    print(json.dumps([module.settings.name, module.collector_names()]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "caf_ecl.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == ["ECL", ["ExpRun", "CDC"]]


def test_load_script_module_returns_one_module_per_directory(tmp_path):
    write(tmp_path, "caf_cdc.py", calibration("CDC"))
    first = load_script_module(tmp_path / "caf_cdc.py", tmp_path)
    assert load_script_module(tmp_path / "caf_cdc.py", tmp_path) is first
    with script_imports(tmp_path):
        from prompt.calibrations.caf_cdc import settings

    assert settings is first.settings
    with pytest.raises(ValueError, match="is not a script of"):
        load_script_module(tmp_path.parent / "elsewhere.py", tmp_path)
