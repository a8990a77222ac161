"""audioprobe: open up audio neural networks, layer by layer."""

__version__ = "0.1.0"
