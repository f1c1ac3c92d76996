"""The marking page and its JSON API: Starlette, served by uvicorn.

Why Starlette: the page needs a dozen small JSON routes, static files (the page, the local MathJax) and one piece of
middleware (the token check in front of everything). Starlette is the small, well-kept ASGI toolkit FastAPI is built
on; FastAPI's request models and generated docs would add nothing here but a dependency on pydantic. uvicorn is the
ASGI server both projects document. Requests run in Starlette's thread pool; the store serialises its writes.

Every request needs a TA's token (``Authorization: Bearer``, or the cookie the page gets from ``/?token=…``);
without one the reply is 401 and holds nothing of the class: no answer, no mark, no name, not even the page.
"""
from __future__ import annotations

import hmac
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..export.mathjax import local_mathjax
from .store import Conflict, MarkingStore

STATIC = Path(__file__).parent / "static"
COOKIE = "kit_mark"


def _item_fields(body: dict) -> tuple[float, str, str]:
    """A rubric item's points, explanation and grader note, as the page sends them."""
    return float(body.get("points", 0)), str(body.get("explanation", "")), str(body.get("note", ""))


def mathjax_dir() -> Path | None:
    """The local MathJax 2 the PDF export uses (helpers.export.mathjax), served at /mathjax/; None if there is none."""
    found = local_mathjax()
    return found.parent if found else None


class TokenGate:
    """ASGI middleware: a request without a valid token gets 401 and nothing else."""

    def __init__(self, app, tokens: dict[str, str]):
        self.app, self.tokens = app, tokens

    def who(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
        if request.url.path == "/" and "token" in request.query_params:
            given = request.query_params["token"]
        # compare_digest: the time a wrong guess takes says nothing about the right token
        return next((name for token, name in self.tokens.items() if given and hmac.compare_digest(given, token)), None)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        name = self.who(request)
        if name is None:
            response = PlainTextResponse("401: a marking token is needed (make mark prints one).", status_code=401,
                                         headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        scope.setdefault("state", {})["ta"] = name
        if request.url.path == "/" and "token" in request.query_params:
            # Keep the token in a cookie and drop it from the address bar (and from the browser's history).
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(COOKIE, request.query_params["token"], httponly=True, samesite="strict")
            return await response(scope, receive, send)
        await self.app(scope, receive, send)


def create_app(store: MarkingStore, tokens: dict[str, str]) -> Starlette:
    """The marking app over ``store``; ``tokens`` maps each token to its TA's name."""

    def ta(request: Request) -> str:
        return request.scope["state"]["ta"]

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def whoami(request: Request) -> Response:
        return JSONResponse({"ta": ta(request), "mathjax": mathjax_dir() is not None})

    def questions(request: Request) -> Response:
        return JSONResponse(store.questions())

    def question(request: Request) -> Response:
        name = request.path_params["name"]
        found = store.question(name)
        if found is None:
            return JSONResponse({"error": f"no written question {name}"}, status_code=404)
        from .render import markdown  # the question text is the sheet's own markdown
        return JSONResponse({**found, "html": markdown(found["text"]), "answers": store.answers(name)})

    def answers(request: Request) -> Response:
        return JSONResponse(store.answers(request.path_params["name"]))

    def answer(request: Request) -> Response:
        found = store.answer(request.path_params["id"])
        return JSONResponse(found) if found else JSONResponse({"error": "no such answer"}, status_code=404)

    async def mark(request: Request) -> Response:
        body = await request.json()
        try:
            saved = store.set_mark(request.path_params["id"], [int(i) for i in body.get("items", [])],
                                   str(body.get("comment", "")), int(body.get("version", 0)), ta(request))
        except Conflict as conflict:
            return JSONResponse({"conflict": True, "current": conflict.current}, status_code=409)
        except KeyError:
            return JSONResponse({"error": "no such answer"}, status_code=404)
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(saved)

    def reopen(request: Request) -> Response:
        return JSONResponse({"mark": store.reopen(request.path_params["id"], ta(request))})

    async def add_item(request: Request) -> Response:
        body = await request.json()
        try:
            item = store.add_item(request.path_params["name"], *_item_fields(body), ta(request))
        except (ValueError, KeyError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(item)

    async def edit_item(request: Request) -> Response:
        body = await request.json()
        try:
            item = store.edit_item(request.path_params["id"], *_item_fields(body), ta(request))
        except (ValueError, KeyError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse({"item": item, "answers": store.answers(item["question"])})

    def comments(request: Request) -> Response:
        return JSONResponse(store.comments(request.path_params["name"], request.query_params.get("q", "")))

    def audit(request: Request) -> Response:
        return JSONResponse(store.audit(request.path_params["id"]))

    routes = [
        Route("/", page),
        Route("/api/me", whoami),
        Route("/api/questions", questions),
        Route("/api/questions/{name}", question),
        Route("/api/questions/{name}/answers", answers),
        Route("/api/questions/{name}/items", add_item, methods=["POST"]),
        Route("/api/questions/{name}/comments", comments),
        Route("/api/answers/{id:int}", answer),
        Route("/api/answers/{id:int}/mark", mark, methods=["PUT"]),
        Route("/api/answers/{id:int}/reopen", reopen, methods=["POST"]),
        Route("/api/answers/{id:int}/audit", audit),
        Route("/api/items/{id:int}", edit_item, methods=["PUT"]),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    mathjax = mathjax_dir()
    if mathjax is not None:
        routes.append(Mount("/mathjax", StaticFiles(directory=mathjax)))
    return Starlette(routes=routes, middleware=[Middleware(TokenGate, tokens=tokens)])
