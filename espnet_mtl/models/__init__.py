"""Model classes selectable with `--model` in our task (see espnet_mtl.registry)."""
