"""The wizard (Textual). It never imports torch, diffusers, transformers, peft or onnxruntime: heavy work runs in
`loratui` subprocesses whose events it reads, so it starts in well under a second (tests/test_boundaries.py)."""
