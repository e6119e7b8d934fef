"""A tiny Definitions module for the web tests: two calibrations, a sign-off and a non-calibration asset,
all partitioned by processing (the real ``b2cal_assets.definitions`` is not needed)."""

from dagster import AssetKey, Definitions, DynamicPartitionsDefinition, asset

processing = DynamicPartitionsDefinition(name="processing")


@asset(key=["payloads", "caf_x"], partitions_def=processing, group_name="local")
def caf_x_payloads() -> int:
    return 1


@asset(key=["payloads", "caf_y"], partitions_def=processing, group_name="local")
def caf_y_payloads() -> int:
    return 2


@asset(
    key=["signoff", "caf_x"],
    deps=[AssetKey(["payloads", "caf_x"])],
    partitions_def=processing,
    group_name="local",
)
def caf_x_signoff() -> None:
    return None


@asset(key=["cdst", "cdst"], partitions_def=processing, group_name="cdst")
def cdst() -> None:
    return None


defs = Definitions(assets=[caf_x_payloads, caf_y_payloads, caf_x_signoff, cdst])
