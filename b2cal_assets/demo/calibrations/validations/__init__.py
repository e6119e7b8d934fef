"""The demo's validation scripts, one per calibration, paired by ``settings.name``."""
