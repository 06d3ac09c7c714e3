"""persona-server: serve a chain of question solvers as an OpenAI- and Ollama-compatible chat model."""

__version__ = "0.1.0"

# Sent to every remote service: says who is calling and where to find us.
USER_AGENT = f"persona-server/{__version__} (+https://github.com/persona-server/persona-server)"
