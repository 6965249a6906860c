"""Tour topics on practice (placeholder)."""
