"""`genie eval`: metrics, plots and videos of a trained Genie (see `run.py` for the keys)."""
