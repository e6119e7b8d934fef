"""Collectors and algorithms of the demo calibrations, one module per subdetector.

A collector turns one input file into summable numpy arrays (histograms, sums, counts); an
algorithm turns the sum over a set of runs into payload constants. They are plain module-level
functions so a collector subjob can import them by name.
"""
