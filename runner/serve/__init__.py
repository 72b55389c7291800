"""`runner serve`: an OpenAI- and Ollama-compatible gateway in front of the same pipeline.

Each HTTP request becomes a `runner.request.Request` (the conversation as the client sent it) and
goes through one long-lived `runner.session.Session`: the router, context fit and `num_ctx`
sizing, retries, fallback, privacy, the per-provider limits shared by every client, and the run
log (`kind` "serve", with the client's name).

    app.py         the Starlette app: routes, body limit, keys, the streaming response
    relay.py       one chat request through the Session: live events, fallback, disconnects
    openai_api.py  Chat Completions in and out (JSON, SSE chunks, errors)
    ollama_api.py  /api/chat (NDJSON), /api/tags, /api/show, /api/version
    models.py      what `model` means (task, provider/model) and the model list
    auth.py        client keys, compared in constant time
    server.py      uvicorn, the bind check, graceful shutdown

Starlette and uvicorn are imported by this package only, so `runner --help` never loads them.
"""
