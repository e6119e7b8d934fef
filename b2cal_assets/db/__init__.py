"""The calibration database: SQLAlchemy 2 models and functions that take a ``Session``."""
