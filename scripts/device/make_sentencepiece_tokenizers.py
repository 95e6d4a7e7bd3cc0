#!/usr/bin/env python3
"""Two SentencePiece-style BPE tokenizer.json files with byte fallback, trained by Hugging Face
`tokenizers` on tinyshakespeare, laid out as Llama 2 / TinyLlama (normalizer Prepend + Replace,
no pre-tokenizer) and as Mistral (Metaspace pre-tokenizer), with the expected ids of a varied text
set. No such tokenizer ships in ../shared/data and the GPU machine has no network, so we make
them. Usage: make_sentencepiece_tokenizers.py DEST; writes DEST/<name>/{tokenizer.json,
tokenizer_config.json,cases.jsonl}."""
import json
import os
import random
import sys

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

dest = sys.argv[1]
text = open("models/tinyshakes-5m/valid.txt", encoding="utf-8").read()
train = text
# A few non-ASCII words so that some multi-byte characters are pieces and the rest fall back to bytes.
train += "\ncafé naïve déjà vu 日本 日本語 ÜBER über\n" * 20

base = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
base.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=90,
                              show_progress=False)
base.train_from_iterator(train.splitlines(), trainer=trainer)
spec = json.loads(base.to_str())

# Llama's layout: <unk> <s> </s>, then the 256 byte pieces <0x00>..<0xFF>, then the learned pieces.
vocab = spec["model"]["vocab"]
learned = sorted(((i, t) for t, i in vocab.items() if i >= 3))
new_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256):
    new_vocab[f"<0x{b:02X}>"] = 3 + b
for i, t in learned:
    if t not in new_vocab:
        new_vocab[t] = len(new_vocab)
spec["model"]["vocab"] = new_vocab
bos_template = {
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
             {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
}
sp_decoder = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}

legacy = json.loads(json.dumps(spec))
legacy["normalizer"] = {"type": "Sequence", "normalizers": [
    {"type": "Prepend", "prepend": "\u2581"},
    {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
legacy["pre_tokenizer"] = None
legacy["post_processor"] = bos_template
legacy["decoder"] = sp_decoder

metaspace = json.loads(json.dumps(spec))
metaspace["normalizer"] = None
metaspace["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                              "split": False}
metaspace["post_processor"] = bos_template
metaspace["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}

random.seed(11)
lines = [l for l in text.splitlines() if l.strip()][:300]
texts = lines + [
    "def f(x):\n    return x**2 + 3  # square\n\n\tif (a != b) { c[i] = 0x1F; }",
    "   leading spaces and trailing   ", "multiple\n\n\nnewlines\r\nwindows", "tabs\tand\t\tmore\t",
    "日本語のテキストと中文混合", "日本 and 日本語", "한국어 텍스트", "emoji 😀🎉👍🏽 family 👨‍👩‍👧",
    "Ünïcödé àçcénts naïve café déjà", "Ελληνικά и русский текст", "مرحبا بالعالم", "math: ∀x∈ℝ, x²≥0",
    "<s>inside</s> text <unk>", "<0x41> is not a byte here", "spaces     between      words", "\n", " ", "a",
    "▁already▁has▁metaspace", "!!!???...", "ROMEO:\nBut soft, what light through yonder window breaks?",
]
alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFG.,;:!?'\"-\n\t0123456789éüñ日本😀▁"
for _ in range(200):
    texts.append("".join(random.choice(alphabet) for _ in range(random.randint(1, 60))))

for name, spec_json in (("sp-legacy", legacy), ("sp-metaspace", metaspace)):
    tok = Tokenizer.from_str(json.dumps(spec_json))
    out = os.path.join(dest, name)
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
               "tokenizer_class": "LlamaTokenizer"}, open(os.path.join(out, "tokenizer_config.json"), "w"))
    with open(os.path.join(out, "cases.jsonl"), "w", encoding="utf-8") as f:
        for t in texts:
            plain = tok.encode(t, add_special_tokens=False).ids
            f.write(json.dumps({"text": t, "ids": plain,
                                "ids_special": tok.encode(t, add_special_tokens=True).ids,
                                "decoded": tok.decode(plain, skip_special_tokens=False)},
                               ensure_ascii=False) + "\n")
    print(name, tok.get_vocab_size(), "pieces,", len(texts), "cases")
