"""Processings are a dynamic partition: several can be in flight at once."""

import dagster as dg

PROCESSING_PARTITIONS_NAME = "processing"
processing_partitions = dg.DynamicPartitionsDefinition(name=PROCESSING_PARTITIONS_NAME)
