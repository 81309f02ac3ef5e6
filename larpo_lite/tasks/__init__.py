"""Tasks: mini-GSM (generated, committed splits), answer extraction, GSM8K/MATH loaders."""

from .answers import answers_equal, extract_answer, is_correct, normalize_number
from .hub import TASKS, load_gsm8k, load_math, load_task
from .mini_gsm import (
    SPLITS,
    TEMPLATES,
    Problem,
    generate_problems,
    load_split,
    make_splits,
    read_jsonl,
    read_problems,
    write_jsonl,
    write_splits,
)
from .prompts import INSTRUCTION, build_messages, build_prompt

__all__ = [
    "INSTRUCTION", "SPLITS", "TASKS", "TEMPLATES", "Problem", "answers_equal", "build_messages",
    "build_prompt", "extract_answer", "generate_problems", "is_correct", "load_gsm8k",
    "load_math", "load_split", "load_task", "make_splits", "normalize_number", "read_jsonl",
    "read_problems", "write_jsonl", "write_splits",
]
