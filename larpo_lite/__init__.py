"""larpo-lite."""
