"""Sentences managers read in digests and alerts (English)."""
