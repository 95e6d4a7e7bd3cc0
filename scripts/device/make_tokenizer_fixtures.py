#!/usr/bin/env python3
"""Expected token ids from Hugging Face `tokenizers` for a varied text set, per tokenizer.json.
Usage: make_tokenizer_fixtures.py NAME=PATH/tokenizer.json ... ; writes $OUT/<NAME>.jsonl with one
{"text": ..., "ids": [...]} per line (ids without special tokens added)."""
import json
import os
import random
import sys

from tokenizers import Tokenizer

random.seed(7)
lines = open("models/tinyshakes-5m/valid.txt", encoding="utf-8").read().splitlines()
texts = [l for l in lines if l.strip()][:400]
texts += [
    "def f(x):\n    return x**2 + 3  # square\n\n\tif (a != b) { c[i] = 0x1F; }",
    "   leading spaces and trailing   ", "multiple\n\n\nnewlines\r\nwindows", "tabs\tand\t\tmore\t",
    "I'll don't they're we've you'd She'S IT'LL", "1234567890 3.14159 1,000,000 2026-11-23",
    "日本語のテキストと中文混合", "한국어 텍스트", "emoji 😀🎉👍🏽 family 👨‍👩‍👧", "Ünïcödé àçcénts naïve café",
    "Ελληνικά и русский текст", "مرحبا بالعالم", "math: ∀x∈ℝ, x²≥0 → √x", "<|endoftext|>inside<|endoftext|> text",
    "spaces     between      words", "\n", " ", "a", "!!!???...", "https://example.com/path?q=1&r=2",
    "ROMEO:\nBut soft, what light through yonder window breaks?",
]
alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFG.,;:!?'\"-\n\t0123456789éüñ日本😀"
for _ in range(300):
    texts.append("".join(random.choice(alphabet) for _ in range(random.randint(1, 60))))

out = os.environ.get("OUT", ".")
for arg in sys.argv[1:]:
    name, path = arg.split("=", 1)
    tok = Tokenizer.from_file(path)
    with open(os.path.join(out, name + ".jsonl"), "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t, "ids": tok.encode(t, add_special_tokens=False).ids}, ensure_ascii=False) + "\n")
    print(name, len(texts), "lines")
