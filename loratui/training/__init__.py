"""Training: base models, the bucket-aware step estimate, kohya-format LoRA files (the loop and jobs build on them)."""
