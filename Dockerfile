# persona-server in a container: the built-in personas work offline; mount your own persona files on /personas.
#   docker build -t persona-server .
#   docker run -p 8337:8337 -e PERSONA_SERVER_API_KEY=change-me persona-server
# Several replicas share conversation memory, per-user variables, the look-up cache and rate limits through
# Redis: deploy/compose.yaml, deploy/kubernetes/.
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[redis]" && useradd --create-home --uid 10001 persona && mkdir /personas
USER persona
# Derived data (the WordNet copy, learned AIML brains) is rebuilt on start when this is empty.
ENV PERSONA_SERVER_CACHE=/home/persona/.cache/persona-server PERSONA_SERVER_HOST=0.0.0.0
EXPOSE 8337
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8337/health', timeout=2)"
ENTRYPOINT ["persona-server"]
CMD ["serve"]
