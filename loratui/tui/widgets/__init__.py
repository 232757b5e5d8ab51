"""The wizard's widgets, each written once for every step."""
