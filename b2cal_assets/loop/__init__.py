"""What happens next in a processing: readiness, submission windows, deadlines, sign-off rules.

Shared by the Dagster sensors, the CLI and the web pages so that every way in follows the same rules.
"""
