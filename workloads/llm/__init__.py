"""Reference LLM inference server: a seeded GPT-2-style decoder behind an OpenAI-style API.

Run it with ``python -m workloads.llm --host 127.0.0.1 --port 8000 --device cpu``.
Importing this package is cheap: torch is imported only by the model and engine modules.
"""
