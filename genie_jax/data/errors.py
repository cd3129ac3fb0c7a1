"""The one error type the data package raises for bad input or bad data on disk.

Messages are one line and name the problem (and the path or record involved), so a failed
launch says what to fix without a traceback dive.
"""


class DataError(ValueError):
    """A dataset is missing, incomplete, built with other settings, or has a corrupt record."""
