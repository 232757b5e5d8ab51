"""The wizard's screens: the welcome screen, one per step, and the dialogs (one per file)."""
