"""The prompt: a chat-templated question that asks for the final answer after ``####``."""

from __future__ import annotations

from typing import Any

# Short answers: on 24 validation problems SmolLM2-135M-Instruct was right 0.33 of the time
# greedily with this instruction (19 tokens on average) against 0.13 with "Solve the problem
# step by step..." (84 tokens, most cut at 96): shorter, better and four times cheaper to sample.
INSTRUCTION = "Answer in one short sentence, then write the final answer as a number after '####'."


def build_messages(question: str) -> list[dict[str, str]]:
    """Chat messages for one question."""
    return [{"role": "user", "content": f"{question}\n{INSTRUCTION}"}]


def build_prompt(question: str, tokenizer: Any) -> str:
    """The chat-templated prompt string (generation prompt added), ready to tokenize
    with ``add_special_tokens=False``."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(build_messages(question), tokenize=False,
                                             add_generation_prompt=True)
    return f"Question: {question}\n{INSTRUCTION}\nAnswer:"
