"""Command lines: argument parsing and output only."""
