"""The kohya/A1111 LoRA file format: key names, saving/loading, ss_*/modelspec metadata, file names, header reading."""
