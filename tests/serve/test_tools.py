"""Tool calls through the gateway: the official clients' tools, carried to each of the four
backends in its own protocol (the fakes check the pairing of calls and results as the real APIs
do), and back, streamed and not."""

from __future__ import annotations

import json

import ollama
import openai
import pytest

from .conftest import profile

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
BACKENDS = [("openai/gpt-4.1", "fake_openai", "openai"), ("anthropic/claude-sonnet-4-6", "fake_anthropic", "anthropic"),
            ("gemini/gemini-2.5-flash", "fake_gemini", "gemini"), ("ollama/qwen2.5:7b", "fake_ollama", "ollama")]


def sdk(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key="anything", max_retries=0, timeout=30)


def call_once(client, model: str, messages: list, stream: bool, **kwargs):
    """(text, finish_reason, tool calls as [{"id", "name", "arguments"}]), streamed or not."""
    if not stream:
        resp = client.chat.completions.create(model=model, messages=messages, **kwargs)
        msg = resp.choices[0].message
        calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in msg.tool_calls or []]
        return msg.content or "", resp.choices[0].finish_reason, calls
    text, finish, calls = "", None, {}
    for chunk in client.chat.completions.create(model=model, messages=messages, stream=True, **kwargs):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for piece in delta.tool_calls or []:
            c = calls.setdefault(piece.index, {"id": None, "name": "", "arguments": ""})
            c["id"] = piece.id or c["id"]
            if piece.function is not None:
                c["name"] += piece.function.name or ""
                c["arguments"] += piece.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    return text, finish, [calls[i] for i in sorted(calls)]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("ref,fixture,provider", BACKENDS, ids=[b[2] for b in BACKENDS])
def test_a_tool_call_round_trip_with_the_openai_sdk(ref, fixture, provider, stream, request, use, serve):
    fake = request.getfixturevalue(fixture)
    use(fake, provider)
    served = serve()
    client = sdk(served)
    text, finish, calls = call_once(client, ref, ASK, stream, tools=[WEATHER, TIME])
    assert finish == "tool_calls" and text == ""
    [call] = calls
    assert call["name"] == "get_weather" and call["id"]
    assert json.loads(call["arguments"]) == {"city": "city-1", "unit": "celsius"}
    # The tool ran; its result goes back with the conversation, as an agent sends it.
    history = ASK + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp": 21}'}]
    text, finish, calls = call_once(client, ref, history, stream, tools=[WEATHER, TIME])
    assert finish == "stop" and not calls
    assert text == f"[{ref.partition('/')[2]}] tool get_weather returned: {{\"temp\": 21}}"
    assert fake.tool_requests == 2


def test_the_wire_in_each_protocol(use, fake_anthropic, fake_gemini, fake_ollama, serve):
    """What each backend put on the wire for the second turn of a round trip."""
    use(fake_anthropic, "anthropic")
    use(fake_gemini, "gemini")
    use(fake_ollama, "ollama")
    served = serve()
    history = ASK + [{"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": '{"time": "12:00"}'}]
    for ref in ("anthropic/claude-sonnet-4-6", "gemini/gemini-2.5-flash", "ollama/qwen2.5:7b"):
        sdk(served).chat.completions.create(model=ref, messages=history, tools=[WEATHER, TIME], tool_choice="auto")
    sent = fake_anthropic.requests[-1].json
    assert sent["messages"][1] == {"role": "assistant", "content": [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}]}
    assert sent["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": '{"time": "12:00"}'}]}
    assert sent["tools"][0] == {"name": "get_weather", "description": "The weather in a city",
                                "input_schema": WEATHER["function"]["parameters"]}
    assert sent["tool_choice"] == {"type": "auto"}
    sent = [r for r in fake_gemini.requests if "Generate" in r.path][-1].json
    assert sent["contents"][1]["parts"][1:] == [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                                                {"functionCall": {"name": "get_time", "args": {}}}]
    assert sent["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}},
        {"functionResponse": {"name": "get_time", "response": {"time": "12:00"}}}]}
    assert sent["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == WEATHER["function"]["parameters"]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    sent = [r for r in fake_ollama.requests if r.path == "/api/chat"][-1].json
    assert sent["messages"][1]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                                                 {"function": {"name": "get_time", "arguments": {}}}]
    assert [(m["role"], m.get("tool_name")) for m in sent["messages"][2:]] == [("tool", "get_weather"),
                                                                                ("tool", "get_time")]
    assert sent["tools"] == [WEATHER, TIME]


def test_tool_choice_forced_and_none(use, fake_anthropic, fake_gemini, serve):
    use(fake_anthropic, "anthropic")
    use(fake_gemini, "gemini")
    served = serve()
    forced = {"type": "function", "function": {"name": "get_time"}}
    for ref in ("anthropic/claude-sonnet-4-6", "gemini/gemini-2.5-flash"):
        _, finish, calls = call_once(sdk(served), ref, ASK, False, tools=[WEATHER, TIME], tool_choice=forced)
        assert finish == "tool_calls" and [c["name"] for c in calls] == ["get_time"]
        text, finish, calls = call_once(sdk(served), ref, ASK, True, tools=[WEATHER, TIME], tool_choice="none")
        assert finish == "stop" and not calls and text.startswith(f"[{ref.partition('/')[2]}] saw ")
    assert fake_anthropic.requests[-2].json["tool_choice"] == {"type": "tool", "name": "get_time"}
    gemini = [r.json for r in fake_gemini.requests if "Generate" in r.path]
    assert gemini[-2]["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_ollama_client_s_tools_through_a_hosted_backend(stream, use, fake_anthropic, serve):
    use(fake_anthropic, "anthropic")
    served = serve()
    c = ollama.Client(host=served.url, timeout=30)

    def chat(messages):
        if not stream:
            return c.chat(model="anthropic/claude-sonnet-4-6", messages=messages, tools=[WEATHER], stream=False).message
        parts = list(c.chat(model="anthropic/claude-sonnet-4-6", messages=messages, tools=[WEATHER], stream=True))
        calls = [tc for p in parts for tc in (p.message.tool_calls or [])]
        return ollama.Message(role="assistant", content="".join(p.message.content or "" for p in parts),
                              tool_calls=calls or None)

    msg = chat(ASK)
    [call] = msg.tool_calls
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "city-1", "unit": "celsius"}
    reply = chat(ASK + [msg, {"role": "tool", "tool_name": "get_weather", "content": "rain"}])
    assert reply.content == "[claude-sonnet-4-6] tool get_weather returned: rain"


def test_a_request_with_tools_goes_only_to_models_that_take_them(use, fake_ollama, fake_openai, serve, home):
    use(fake_ollama, "ollama")
    use(fake_openai, "openai")
    (home / "config.yaml").write_text(
        "retries: 0\nendpoints:\n  lab: {base_url: '" + fake_openai.url + "/v1', local: true}\n"
        "models:\n  lab/gpt-4.1: {context: 100000}\n")
    profile(home, "agent", "ollama/deepseek-r1:8b", "lab/gpt-4.1", "ollama/qwen2.5:7b")
    served = serve()
    raw = sdk(served).chat.completions.with_raw_response.create(model="agent", messages=ASK, tools=[WEATHER])
    assert raw.headers["x-runner-model"] == "ollama/qwen2.5:7b"
    assert raw.parse().choices[0].message.tool_calls[0].function.name == "get_weather"
    assert not [r for r in fake_ollama.requests if r.path == "/api/chat" and r.json["model"] == "deepseek-r1:8b"]
    assert fake_openai.tool_requests == 0
    # Without tools the task routes as usual: its first model answers.
    raw = sdk(served).chat.completions.with_raw_response.create(model="agent", messages=ASK)
    assert raw.headers["x-runner-model"] == "ollama/deepseek-r1:8b"
    with pytest.raises(openai.InternalServerError) as info:
        sdk(served).chat.completions.create(model="ollama/deepseek-r1:8b", messages=ASK, tools=[WEATHER])
    assert info.value.status_code == 503 and "does not support tools" in info.value.message
    with pytest.raises(openai.InternalServerError) as info:
        sdk(served).chat.completions.create(model="lab/gpt-4.1", messages=ASK, tools=[WEATHER])
    assert "set tools: true" in info.value.message


def test_bad_tools_are_bad_requests(serve):
    served = serve()
    for tools, tool_choice in (([{"type": "function"}], None), ([WEATHER], "sometimes"),
                               ("get_weather", None)):
        with pytest.raises(openai.BadRequestError) as info:
            sdk(served).chat.completions.create(model="general", messages=ASK, tools=tools,
                                                **({"tool_choice": tool_choice} if tool_choice else {}))
        assert info.value.param in ("tools", "tool_choice")
    with pytest.raises(openai.BadRequestError) as info:
        sdk(served).chat.completions.create(model="general", messages=ASK + [{"role": "tool", "content": "x"}])
    assert info.value.param == "messages[1].tool_call_id"
