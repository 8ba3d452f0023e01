"""Training data iterators: mixed-source sampling and datasets (asks the model which
sources it consumes; never imports a model)."""
