"""Runnable examples: ``python -m spikeops.examples.<name> --help``."""
