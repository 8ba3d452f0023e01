"""Running recipes: option parsing, the job runner (local / Slurm), process lifetime,
locks, stage marks, the pipeline, the sweep, recipe copies."""
