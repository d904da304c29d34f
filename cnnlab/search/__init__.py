"""Search: spaces (space.py), the Optuna study in the run folder (study.py), measured latency with its cache
(latency.py), settings (settings.py) and what a finished search shows (results.py). docs/search.md."""
