"""compbench: honest cost measurements of compressed speech and text Transformers."""

__version__ = "0.2.0"
