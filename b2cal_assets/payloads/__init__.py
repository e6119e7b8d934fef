"""Payload archives: download (``archive``) and the checks on an expert's replacement upload (``upload``)."""
