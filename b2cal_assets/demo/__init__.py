"""The synthetic detector: a data generator, cDST production and the built-in calibration scripts.

It stands in for the experiment's detector and reconstruction so that the whole calibration loop can
run on one machine: the generator smears events with the TRUE constants (``truth.py``), the
calibration scripts recover them, and ``truth.deviation`` says how close they got. It uses ``domain``
and ``caf`` like any experiment's scripts would; never Dagster.
"""
