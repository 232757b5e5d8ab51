"""loratui: train Stable Diffusion LoRA models from a keyboard-driven terminal wizard."""

__version__ = "0.1.0"
