"""Running one calibration the framework's way: collector subjobs, algorithm, iterations, outputdb."""
