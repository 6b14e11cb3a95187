"""Cross-cutting staff services: the working-day calendar."""
