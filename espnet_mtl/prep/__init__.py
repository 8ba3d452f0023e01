"""Data preparation: data-dir utilities, audio dump, speed perturbation, tokenizers,
text normalisation, statistics, auxiliary corpora for the driver."""
