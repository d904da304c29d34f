"""The packaged config tree (Hydra reads it as pkg://cnnlab.conf)."""
