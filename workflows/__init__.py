"""MD engine, jobflow makers and flows (viglas.workflows)."""
