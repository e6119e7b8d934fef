"""Reading and writing the calibration database: plain functions that take a ``Session``, one module per
kind of row. They flush but never commit: the caller's ``session_scope`` decides the transaction, so a
step that writes several rows writes all of them or none.
"""
