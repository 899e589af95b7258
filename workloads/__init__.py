"""Reference inference workloads for gpuchaos (built into their own image; no `harness` imports)."""
