"""What `cnnlab evaluate` and `cnnlab predict` leave in their run folders: confusion matrices (CSV, PNG),
per-class accuracy and prediction tables (CSV, JSON). The numbers come from cnnlab.engine.metrics."""
