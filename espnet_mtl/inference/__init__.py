"""Decoding helpers: path inference (MT / ASR paths of a multi-task model), scoring."""
