"""The ground floor: rules every layer shares and that import nothing above them.

``errors`` (the exception hierarchy), ``stages`` (stage names and I/O, the timestep axis and profile),
``sizes`` (padding, processing size, resolution presets), ``files`` (atomic writes, locks, hashes),
``deps`` (optional dependencies and their install hints), ``metrics`` (PSNR), ``precision`` (precision names
and their autocast dtypes), ``progress`` (the frame progress bar).
"""
