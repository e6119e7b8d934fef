"""Where the framework is installed (here: a minimal fake of its packages on the path), scripts import
its own prompt, caf and basf2, and b2cal reads its CalibrationSettings into its own."""

import json
import os
import subprocess
import sys

from b2cal_assets_tests.domain.scriptdir import write

FAKE_PROMPT = '''
from collections import namedtuple

INPUT_DATA_FILTERS = {"Magnet": {"On": "On", "Off": "Off", "Either": "Either"},
                      "Data Tag": {"hadron_calib": "hadron_calib", "cosmic_calib": "cosmic_calib"}}
FIELDS = ["name", "expert_username", "subsystem", "description", "input_data_formats", "input_data_names",
          "input_data_filters", "depends_on", "expert_config", "produced_payloads"]


class CalibrationSettings(namedtuple("CalSet_Factory", FIELDS)):
    def __new__(cls, name, expert_username, subsystem, description, input_data_formats=None, input_data_names=None,
                input_data_filters=None, depends_on=None, expert_config=None, produced_payloads=None):
        return super().__new__(cls, name, expert_username, subsystem, description, frozenset(input_data_formats),
                               frozenset(input_data_names), input_data_filters or {}, depends_on or [],
                               expert_config or {}, produced_payloads or [])


class ValidationSettings(namedtuple("ValSet_Factory", ["name", "description", "download_files", "expert_config"])):
    pass
'''

SCRIPT_CDC = '''
import basf2
from caf.framework import Calibration
from prompt import CalibrationSettings, INPUT_DATA_FILTERS

settings = CalibrationSettings(name="CDC Tracking", expert_username="cdc", subsystem="cdc", description="t0",
                               input_data_formats=["raw"], input_data_names=["hadron_calib"],
                               input_data_filters={"hadron_calib": [INPUT_DATA_FILTERS["Data Tag"]["hadron_calib"]]},
                               expert_config={"bins": 4}, produced_payloads=["CDCTimeZeros"])


def get_calibrations(input_data, **kwargs):
    return [Calibration("tz0")]
'''

SCRIPT_ALIGN = '''
from prompt import CalibrationSettings
from prompt.calibrations.caf_cdc import settings as cdc

settings = CalibrationSettings(name="Full VXD and CDC Alignment", expert_username="al", subsystem="alignment",
                               description="", input_data_formats=["raw"], input_data_names=["cosmic_calib"],
                               depends_on=[cdc])


def get_calibrations(input_data, **kwargs):
    return []
'''

VALIDATION = '''
import sys
from prompt import ValidationSettings

settings = ValidationSettings(name="CDC Tracking", description="plots", download_files=["stdout"], expert_config={})


def run_validation(job_path, input_data_path, requested_iov, expert_config):
    pass
'''

PROBE = '''
import json, sys
from b2cal_assets.caf.scripts import load_scripts
scripts = load_scripts(sys.argv[1])
cdc = scripts["CDC Tracking"]
(cal,) = cdc.get_calibrations({"hadron_calib": {}})
print(json.dumps({
    "listing": scripts.to_json(),
    "framework": cdc.namespace.framework,
    "real_basf2": cdc.module.basf2.REAL,
    "real_calibration": type(cal).__module__,
    "settings_type": type(cdc.settings).__module__,
    "validation_type": type(cdc.validation.settings).__module__,
}))
'''


def test_the_installed_frameworks_packages_are_used(tmp_path):
    framework = tmp_path / "release"
    write(framework, "basf2.py", "REAL = True\ndef B2INFO(*args):\n    pass\n")
    write(framework, "prompt/__init__.py", FAKE_PROMPT)
    write(framework, "prompt/calibrations/__init__.py", "")
    write(framework, "prompt/validations/__init__.py", "")
    write(framework, "caf/__init__.py", "")
    write(framework, "caf/framework.py", "class Calibration:\n    def __init__(self, name):\n        self.name = name\n")
    expert = tmp_path / "mine" / "prompt"
    write(expert / "calibrations", "caf_cdc.py", SCRIPT_CDC)
    write(expert / "calibrations", "caf_vxdcdc_alignment.py", SCRIPT_ALIGN)
    write(expert / "validations", "cdc_validation.py", VALIDATION)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(framework), *sys.path])}
    done = subprocess.run([sys.executable, "-c", PROBE, str(expert / "calibrations")], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["framework"] is True and seen["real_basf2"] is True
    assert seen["real_calibration"] == "caf.framework"  # the framework's own class
    assert seen["settings_type"] == seen["validation_type"] == "b2cal_assets.domain.settings"
    listing = {c["name"]: c for c in seen["listing"]["calibrations"]}
    assert seen["listing"]["errors"] == []
    assert listing["Full VXD and CDC Alignment"]["stage"] == "alignment"
    assert listing["Full VXD and CDC Alignment"]["depends_on"] == ["CDC Tracking"]
    assert listing["CDC Tracking"]["produced_payloads"] == ["CDCTimeZeros"]
    assert listing["CDC Tracking"]["validation"].endswith("cdc_validation.py")
