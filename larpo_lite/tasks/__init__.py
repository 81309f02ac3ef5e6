"""Tasks: mini-GSM (generated, committed splits), answer extraction, GSM8K/MATH loaders,
UltraFeedback prompts (scored by a reward model)."""

from .answers import VERIFIER_VERSION, answers_equal, extract_answer, is_correct, normalize_number
from .hub import REWARD_TASKS, TASKS, VERIFIED_TASKS, has_verifier, load_gsm8k, load_math, load_task
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
from .prompts import INSTRUCTION, build_messages, build_prompt, problem_prompt
from .ultrafeedback import load_ultrafeedback

__all__ = [
    "INSTRUCTION", "REWARD_TASKS", "SPLITS", "TASKS", "TEMPLATES", "VERIFIED_TASKS", "VERIFIER_VERSION",
    "Problem",
    "answers_equal", "build_messages", "build_prompt", "extract_answer", "generate_problems",
    "has_verifier", "is_correct", "load_gsm8k", "load_math", "load_split", "load_task",
    "load_ultrafeedback", "make_splits", "normalize_number", "problem_prompt", "read_jsonl",
    "read_problems", "write_jsonl", "write_splits",
]
