"""`GET /v1/models` and `/v1/models/{id}` in the format of the SDK that asks.

Anthropic's and Google's SDKs list models at the same path as OpenAI's: a request carrying `anthropic-version`
gets Anthropic's list, one carrying Gemini's key (`x-goog-api-key` or `?key=`) gets Gemini's, any other OpenAI's.
These routes come before OpenAI's in the app's route list.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from persona_server.api import anthropic, gemini, openai


def _protocol(request: Request) -> str:
    headers = request.headers
    if "anthropic-version" in headers:
        return "anthropic"
    if "x-goog-api-key" in headers or "key" in request.query_params:
        return "gemini"
    return "openai"


async def list_models(request: Request) -> Response:
    match _protocol(request):
        case "anthropic":
            return anthropic.list_models(request)
        case "gemini":
            return gemini.list_models(request)
    return await openai.list_models(request)


async def retrieve_model(request: Request) -> Response:
    match _protocol(request):
        case "anthropic":
            return anthropic.retrieve_model(request)
        case "gemini":
            return gemini.retrieve_model(request)
    return await openai.retrieve_model(request)


def routes() -> list[Route]:
    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", retrieve_model, methods=["GET"]),
    ]
