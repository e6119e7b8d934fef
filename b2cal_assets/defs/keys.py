"""Asset keys, in one place so the sensors, the web layer and the tests agree."""

import dagster as dg


def skim_key(data_tag: str) -> dg.AssetKey:
    return dg.AssetKey(["skim", data_tag])


def payloads_key(calibration: str) -> dg.AssetKey:
    return dg.AssetKey(["payloads", calibration])


def signoff_key(calibration: str) -> dg.AssetKey:
    return dg.AssetKey(["signoff", calibration])


CDST_KEY = dg.AssetKey(["cdst"])

SUBMITTED_BY_TAG = "b2cal/submitted_by"
USER_TAG = "b2cal/user"
REASON_TAG = "b2cal/reason"
