"""Training: ESPnet Trainer subclass, strategies (per-objective losses -> one update), probes."""
