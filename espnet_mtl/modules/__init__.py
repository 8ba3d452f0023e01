"""Reusable network blocks with no loss: textual encoder, adapters, ..."""
