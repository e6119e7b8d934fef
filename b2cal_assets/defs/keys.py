"""Asset keys, in one place so the sensors, the web layer and the tests agree."""

import dagster as dg

from b2cal_assets.domain.names import asset_name


def skim_key(data_tag: str) -> dg.AssetKey:
    return dg.AssetKey(["skim", asset_name(data_tag)])


def payloads_key(calibration: str) -> dg.AssetKey:
    return dg.AssetKey(["payloads", asset_name(calibration)])


def signoff_key(calibration: str) -> dg.AssetKey:
    return dg.AssetKey(["signoff", asset_name(calibration)])


CDST_KEY = dg.AssetKey(["cdst"])

SUBMITTED_BY_TAG = "b2cal/submitted_by"
USER_TAG = "b2cal/user"
REASON_TAG = "b2cal/reason"
REQUESTED_BY_TAG = "b2cal/requested_by"  # who asked for a loop run: the expert, a manager's restart, auto
LAUNCHED_BY_TAG = "b2cal/launched_by"  # "auto" on every run the loop sensor requests
VALIDITY_CHECK = "payload_validity"  # the checks on payloads/<calibration> (defs/checks.py)
VALIDATION_CHECK = "validation"
SIGNOFF_CHECK = "accepted"  # the check on signoff/<calibration>: failed when the payloads were rejected


def calibration_of_key(key: dg.AssetKey, calibrations) -> str | None:
    """The real calibration name behind a payloads/sign-off key, among ``calibrations`` (names)."""
    if len(key.path) != 2 or key.path[0] not in ("payloads", "signoff"):
        return None
    return next((name for name in calibrations if asset_name(name) == key.path[1]), None)
