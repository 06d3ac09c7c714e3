"""persona-server: serve a chain of question solvers as an OpenAI- and Ollama-compatible chat model."""

__version__ = "0.1.0"
