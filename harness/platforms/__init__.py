"""Where workloads run. ``local`` is the embedded default."""
