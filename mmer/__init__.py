"""mmer: multimodal emotion recognition with attention fusion and deep metric learning."""

__version__ = "0.1.0"
