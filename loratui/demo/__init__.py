"""The embedded demo: offline, deterministic builders of tiny models and synthetic pictures."""
