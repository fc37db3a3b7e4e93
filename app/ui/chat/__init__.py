"""The chat panel's widgets."""
