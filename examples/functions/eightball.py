"""The magic 8-ball (``!8ball will it rain?``): an ``async def`` handler."""

import asyncio
import hashlib

ANSWERS = [
    "It is certain.",
    "Without a doubt.",
    "You may rely on it.",
    "Ask again later.",
    "Cannot predict now.",
    "Don't count on it.",
    "My sources say no.",
    "Outlook good.",
]


async def handler(event, context):
    question = ((event.get("trigger") or {}).get("context_text") or "").strip()
    if not question.endswith("?"):
        return {"success": False, "error": "Ask me a question (end it with '?')"}
    await asyncio.sleep(0)  # a real module might await an API here
    digest = hashlib.sha256(f"{question}|{event.get('request_id')}".encode()).digest()
    answer = ANSWERS[digest[0] % len(ANSWERS)]
    return {
        "success": True,
        "message": f"8-ball: {answer}",
        "response_type": "embed",
        "embed": {"title": question, "description": answer},
        "targets": [{"type": (event.get("user") or {}).get("platform") or "chat"}],
    }
