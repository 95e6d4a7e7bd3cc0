#!/usr/bin/env python3
"""Variants of the two SentencePiece-style tokenizers of make_sentencepiece_tokenizers.py (read from
tests/data/text/sp/), each changing what those two leave out: Metaspace split and prepend schemes,
merges as "a b" strings, ignore_merges, <unk> instead of byte fallback, a Gemma-style decoder, added
tokens that are normalized or not special. For every fixture, the originals included, it also
writes decode.jsonl: random id sequences (invalid UTF-8 byte runs, special tokens) and what
Hugging Face decodes them to. Usage: make_sentencepiece_variants.py DEST; writes
DEST/<name>/{tokenizer.json,tokenizer_config.json,cases.jsonl,decode.jsonl}; the originals get only
decode.jsonl."""
import json
import os
import random
import shutil
import sys

from tokenizers import Tokenizer

src = "tests/data/text/sp"
dest = sys.argv[1]
texts = [json.loads(l)["text"] for l in open(os.path.join(src, "sp-legacy", "cases.jsonl"), encoding="utf-8")]
texts += ["thee and thou", "<|tool|>call<|tool|>", "a thee andthee and b", "▁▁x▁", "  ", "x  "]
legacy = json.load(open(os.path.join(src, "sp-legacy", "tokenizer.json"), encoding="utf-8"))
metaspace = json.load(open(os.path.join(src, "sp-metaspace", "tokenizer.json"), encoding="utf-8"))
sp_decoder = legacy["decoder"]


def copy(spec):
    return json.loads(json.dumps(spec))


def metaspace_variant(prepend_scheme, split, decoder):
    spec = copy(metaspace)
    spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": prepend_scheme,
                             "split": split}
    spec["decoder"] = decoder
    return spec


variants = {}
# Mistral's own layout: Metaspace split, the Llama decoder.
variants["sp-metaspace-split"] = metaspace_variant("first", True, sp_decoder)
variants["sp-metaspace-always"] = metaspace_variant(
    "always", True, {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True})
variants["sp-metaspace-never"] = metaspace_variant(
    "never", False, {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never", "split": False})

# Gemma-like: Replace only (no Prepend), no Strip; merges as strings, ignore_merges, more added tokens.
gemma = copy(legacy)
gemma["normalizer"] = {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}
gemma["decoder"] = {"type": "Sequence", "decoders": sp_decoder["decoders"][:3]}
gemma["model"]["merges"] = [" ".join(m) for m in gemma["model"]["merges"]]
gemma["model"]["ignore_merges"] = True
next_id = len(gemma["model"]["vocab"])
gemma["added_tokens"] += [
    {"id": next_id, "content": "thee and", "single_word": False, "lstrip": False, "rstrip": False,
     "normalized": True, "special": False},
    {"id": next_id + 1, "content": "<|tool|>", "single_word": False, "lstrip": False, "rstrip": False,
     "normalized": False, "special": False},
]
variants["sp-gemma-like"] = gemma

# No byte fallback: unknown characters become <unk>, fused or one each.
for name, fuse in (("sp-unk-fused", True), ("sp-unk", False)):
    spec = copy(legacy)
    spec["model"]["byte_fallback"] = False
    spec["model"]["fuse_unk"] = fuse
    variants[name] = spec

config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
          "tokenizer_class": "LlamaTokenizer"}


def decode_cases(tok, path):
    rng = random.Random(5)
    size = tok.get_vocab_size()
    byte_ids = [i for i in range(size) if (tok.id_to_token(i) or "").startswith("<0x")]
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(300):
            ids = []
            for _ in range(rng.randint(1, 12)):
                r = rng.random()
                if r < 0.1:
                    ids.append(rng.choice([0, 1, 2]))
                elif r < 0.45 and byte_ids:
                    ids.append(rng.choice(byte_ids))
                else:
                    ids.append(rng.randrange(size))
            f.write(json.dumps({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                                "decoded_skip": tok.decode(ids, skip_special_tokens=True)},
                               ensure_ascii=False) + "\n")


for name in ("sp-legacy", "sp-metaspace"):
    out = os.path.join(dest, name)
    os.makedirs(out, exist_ok=True)
    decode_cases(Tokenizer.from_file(os.path.join(src, name, "tokenizer.json")), os.path.join(out, "decode.jsonl"))

for name, spec in variants.items():
    out = os.path.join(dest, name)
    os.makedirs(out, exist_ok=True)
    text_json = json.dumps(spec, ensure_ascii=False, indent=2)
    tok = Tokenizer.from_str(text_json)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text_json)  # as written, so that string merges stay strings
    json.dump(config, open(os.path.join(out, "tokenizer_config.json"), "w"))
    with open(os.path.join(out, "cases.jsonl"), "w", encoding="utf-8") as f:
        for t in texts:
            plain = tok.encode(t, add_special_tokens=False).ids
            special = tok.encode(t, add_special_tokens=True).ids
            f.write(json.dumps({"text": t, "ids": plain, "ids_special": special,
                                "decoded": tok.decode(plain, skip_special_tokens=False),
                                "decoded_special_skip": tok.decode(special, skip_special_tokens=True)},
                               ensure_ascii=False) + "\n")
    decode_cases(tok, os.path.join(out, "decode.jsonl"))
    print(name, tok.get_vocab_size(), "pieces,", len(texts), "cases")
