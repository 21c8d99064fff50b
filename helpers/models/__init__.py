"""The networks, the pretrained backbones (musicnn, AST), the model registry, checkpoints
and stored features."""
