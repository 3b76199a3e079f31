"""The logic behind the command lines in ``tools/``, importable and testable."""
