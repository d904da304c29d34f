"""One module per command, each with `run(cfg, ctx) -> dict of metrics` (see cnnlab/commands.py)."""
