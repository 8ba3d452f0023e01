"""Training probes: measurements taken on live training batches (gradient conflict)."""
