"""Building blocks that commands compose: train a model and write its record, resume an interrupted run,
resolve a `source=` run and its data, a pipeline's plan. Below `pipelines/` (one module per command), above
report/runs/records and the library layers; command modules never import each other, they share these."""
