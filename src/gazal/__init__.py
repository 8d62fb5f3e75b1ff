"""gazal: an open implementation of the Gazal-R1 medical reasoning training system."""

__version__ = "0.1.0"
