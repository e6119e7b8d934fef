"""Processings are a dynamic partition: several can be in flight at once."""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

PROCESSING_PARTITIONS_NAME = "processing"
processing_partitions = dg.DynamicPartitionsDefinition(name=PROCESSING_PARTITIONS_NAME)


@contextmanager
def partitioned_checks() -> Iterator[None]:
    """Where checks partitioned by processing are defined: each processing's verdict is its own.
    ``partitions_def`` on an asset check is a preview API in Dagster 1.13; its warning is expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield
