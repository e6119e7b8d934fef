"""Scripts shaped like the framework's current prompt scripts load, with the right stages,
dependencies and validations; the one that needs a framework package is reported as such."""

from pathlib import Path

import pytest

from b2cal_assets.caf.scripts import load_scripts
from b2cal_assets.domain.framework_required import FrameworkRequired
from b2cal_assets.domain.iov import IoV

PROMPT = Path(__file__).resolve().parents[1] / "fixtures" / "framework_style" / "prompt"
CALIBRATIONS = PROMPT / "calibrations"

STAGES = {
    "CDC Tracking": "pre_tracking",
    "PXD hot/dead pixel calibration": "pre_tracking",
    "SVD Time Calibration": "pre_tracking",
    "Full VXD and CDC Alignment": "alignment",
    "KLM alignment": "alignment",
    "ARICH channel masks": "post_tracking",
    "BeamSpot Calibrations": "post_tracking",
    "ECL crystal energy (e+e- -> gamma gamma)": "post_tracking",
    "Ecms Calibrations": "post_tracking",
}


@pytest.fixture(scope="module")
def scripts():
    return load_scripts(CALIBRATIONS)


def test_every_framework_style_script_loads_with_its_stage(scripts):
    assert {name: s.stage.value for name, s in scripts.calibrations.items()} == STAGES
    assert scripts.graph.upstream("Full VXD and CDC Alignment") == ("CDC Tracking", "SVD Time Calibration")
    assert scripts.graph.upstream("Ecms Calibrations") == ("BeamSpot Calibrations",)
    assert scripts["Ecms Calibrations"].settings.input_data_filters["mumuOff"][1:3] == ("Continuum", "")
    assert scripts["CDC Tracking"].settings.produced_payloads[0] == "CDCTimeZeros"


def test_validations_beside_the_calibrations_pair_by_name(scripts):
    paired = {name: s.validation.file.name for name, s in scripts.calibrations.items() if s.validation}
    assert paired == {
        "CDC Tracking": "cdc_tracking_validation.py",
        "Full VXD and CDC Alignment": "vxdcdc_alignment.py",
        "Ecms Calibrations": "ecms.py",
    }


def test_a_script_importing_a_framework_package_is_reported_as_needing_the_framework(scripts):
    errors = {Path(e.file).name: e for e in scripts.errors}
    assert set(errors) == {"caf_top.py", "caf_top_common.py"}
    assert all(e.needs_framework for e in errors.values())
    assert errors["caf_top.py"].message.startswith(
        "line 6: needs the framework (basf2) installed to load: it imports 'reconstruction'"
    )
    assert "line 5: needs the framework (basf2) installed to load: importing caf_top.py, whose line 6:" in (
        errors["caf_top_common.py"].message
    )


def test_building_a_calibration_that_needs_the_framework_says_which_and_what(scripts):
    with pytest.raises(FrameworkRequired) as info:
        scripts["CDC Tracking"].get_calibrations({}, requested_iov=IoV(0, 0, -1, -1))
    assert str(info.value).startswith(
        "calibration 'CDC Tracking': needs the framework (basf2): ROOT.Belle2.CDC.T0CalibrationAlgorithm is a C++"
    )
    data = {name: {} for name in scripts["ARICH channel masks"].settings.input_data_names}
    (arich,) = scripts["ARICH channel masks"].get_calibrations(data, requested_iov=IoV(0, 0, -1, -1))
    assert [db.global_tag for db in arich.database_chain] == ["data_prompt_rel08"]
    with pytest.raises(FrameworkRequired, match="collector is the framework module 'ARICHChannelMaskMaker'"):
        arich.check_runnable()
