"""Reference image classifier: a seeded ResNet-50-shaped CNN behind the KServe v2 protocol.

Run it with ``python -m workloads.classifier --host 127.0.0.1 --port 8000 --device cpu``.
Importing this package is cheap: torch is imported only by the model and engine modules.
"""
