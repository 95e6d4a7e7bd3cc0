#!/usr/bin/env python3
"""Writes tests/data/chat/cases.json: chat templates rendered by jinja2 exactly as transformers'
apply_chat_template renders them (transformers/utils/chat_template_utils.py: an
ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loop controls and the {% generation %}
tag; raise_exception, strftime_now, and a tojson that keeps non-ASCII text). The C++ tests
(tests/text/chat_template_test.cpp) must render the same text, or fail the same way.

    python3 scripts/make_chat_template_fixtures.py   # jinja2 >= 3.1 (made with 3.1.6)

"models": the real templates of tests/data/chat/*_tokenizer_config.json over conversations, with
the context transformers builds (messages, tools, documents, add_generation_prompt, the special
tokens, extra kwargs). "features": small templates, one a feature, each with its context and the
expected output, or jinja2's error (type, message, template line) and a substring afq's one-line
message must hold.
"""
import json
import sys
import traceback
from datetime import datetime
from pathlib import Path

import jinja2
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "chat"


class AssistantTracker(Extension):
    """transformers' {% generation %} ... {% endgeneration %}: renders its body (the tracking of
    assistant spans is not needed here)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _generation_support(self, context, caller):
        return caller()


def make_environment():
    # As transformers' _compile_jinja_template.
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_environment()


def template_line(exc):
    """The template line jinja2 reports: on syntax errors, else from the rewritten traceback."""
    if isinstance(exc, SyntaxError):  # Python's, about the code jinja2 generated: no template line
        return None
    if getattr(exc, "lineno", None):
        return exc.lineno
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == "<template>":
            line = lineno
    return line


def render(template, context):
    try:
        return {"expected": ENV.from_string(template).render(**context)}
    except Exception as e:  # jinja2's errors, and Python's TypeError, ZeroDivisionError, ...
        out = {"error": f"{type(e).__name__}: {e}"}
        line = template_line(e)
        if line is not None:
            out["error_line"] = line
        return out


# ---- the real templates ----

def special_tokens(config):
    """transformers' special_tokens_map: the tokens the tokenizer has (AddedToken dicts as text)."""
    out = {}
    for key in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if value is not None:
            out[key] = value
    if config.get("additional_special_tokens"):
        out["additional_special_tokens"] = config["additional_special_tokens"]
    return out


SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
USER = {"role": "user", "content": "What is the capital of France?"}
ASSISTANT = {"role": "assistant", "content": "The capital of France is Paris."}
USER2 = {"role": "user", "content": "  And of Italy? Answer in one word, please.\n"}
UNICODE = {"role": "user", "content": "Ça va? 日本語で答えて 🙂 \"quotes\" and \\backslashes\\"}
THINKING = {"role": "assistant", "content": "<think>\nThe user wants Paris.\n</think>\n\nParis."}

CONVERSATIONS = [
    ("system and user", [SYSTEM, USER], True, {}),
    ("user only", [USER], True, {}),
    ("user only, no generation prompt", [USER], False, {}),
    ("multi-turn", [SYSTEM, USER, ASSISTANT, USER2], True, {}),
    ("multi-turn ending with the assistant", [SYSTEM, USER, ASSISTANT], False, {}),
    ("unicode and quotes", [UNICODE], True, {}),
    ("empty conversation", [], True, {}),
]
QWEN3_ONLY = [
    ("thinking off", [USER], True, {"enable_thinking": False}),
    ("thinking on", [SYSTEM, USER], True, {"enable_thinking": True}),
    ("assistant with think content, last turn", [USER, THINKING], False, {}),
    ("assistant with think content, then a user", [USER, THINKING, USER2], True, {"enable_thinking": False}),
    ("reasoning_content field", [USER, {"role": "assistant", "content": "Paris.", "reasoning_content": "Easy."}], False, {}),
    ("tool call and response", [
        USER,
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_capital", "arguments": {"country": "France"}}}]},
        {"role": "tool", "content": "Paris"},
    ], True, {}),
]


def model_cases():
    cases = []
    for model in ("llama3", "qwen3"):
        config_file = f"{model}_tokenizer_config.json"
        config = json.loads((DATA / config_file).read_text())
        convs = CONVERSATIONS + (QWEN3_ONLY if model == "qwen3" else [])
        for name, messages, add_generation_prompt, extra in convs:
            context = {"messages": messages, "tools": None, "documents": None,
                       "add_generation_prompt": add_generation_prompt, **special_tokens(config), **extra}
            result = render(config["chat_template"], context)  # Qwen3 fails on no messages
            cases.append({"name": f"{model}: {name}", "config": config_file, "messages": messages,
                          "add_generation_prompt": add_generation_prompt, "extra": extra, **result})
    return cases


# ---- one template a feature ----

# (name, template, context[, error_contains]): error_contains is what afq's message must hold
# when jinja2 fails; the expected text or error itself always comes from jinja2.
USERS = [{"name": "ann", "age": 31}, {"name": "bob", "age": 25}, {"name": "cy"}]
MSGS = [{"role": "system", "content": "s"}, {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}]
NESTED = {"name": "f", "args": {"x": [1, 2.5, True, None], "s": "é\n\"q\"\t\\"}, "empty": {}, "list": []}

LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
CHATML = """{% for message in messages %}
    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}
{% endfor %}
{% if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{% endif %}
"""
LLAMA31_LIKE = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none %}
    {{- "You have access to the following functions.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- else %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]

FEATURES = [
    # whitespace and the lexer
    ("text only, trailing newline dropped", "Hello\nworld\n", {}),
    ("two trailing newlines keep one", "Hello\n\n", {}),
    ("comment", "a {# comment #} b", {}),
    ("comment trims its newline", "a\n{# c #}\nb\n  {# indented #}\nc", {}),
    ("trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter", {}),
    ("lstrip_blocks", "  {% if true %}\n  yes\n  {% endif %}\n  {{ 'v' }}\n", {}),
    ("lstrip only at line start", "x  {% if true %}y{% endif %}  {{ 'z' }}", {}),
    ("dash whitespace control", "a   {%- if true -%}   b   {%- endif -%}   c", {}),
    ("dash on variables", "a  \n {{- 'x' -}} \n b", {}),
    ("plus disables lstrip and trim", "  {%+ if true %}x{% endif +%}\ny", {}),
    ("dash comment", "a  {#- c -#}  b", {}),
    ("crlf newlines", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc", {}),
    ("raw block", "{% raw %}{{ not evaluated }} {% if %}{% endraw %}!", {}),
    ("nested braces in output", "{{ {'a': {'b': 1}} }}", {}),
    ("minus right after {{ is whitespace control", "{{-1}}", {}),
    ("chatml indented template", CHATML, {"messages": MSGS[:2], "add_generation_prompt": True}),
    # literals
    ("string escapes", "{{ 'a\\tb\\\\c\\x41\\u00e9\\n' }}{{ \"it's\" }}{{ 'ab' 'cd' }}{{ 'q\\'s' }}", {}),
    ("multi-line string literal", "{{ 'line1\nline2' }}", {}),
    ("numbers", "{{ 1 }} {{ 1.5 }} {{ 1e3 }} {{ 1_000 }} {{ 0x1F }} {{ 2.50 }} {{ 1e-5 }} {{ 1e20 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.1 + 0.2 }}", {}),
    ("constants", "{{ true }} {{ True }} {{ false }} {{ False }} {{ none }} {{ None }}", {}),
    ("list, tuple and dict repr", "{{ [1, 'a', none, true, 1.5, {'k': \"v's\"}] }} {{ (1,) }} {{ (1, 2) }} {{ () }} {{ {} }}", {}),
    ("string repr quoting", "{{ ['it\\'s', 'say \"hi\"', 'both \\'\"', 'tab\\t', 'é', 'nl\\n', '\\\\'] }}", {}),
    # operators
    ("arithmetic", "{{ 7 + 2 }} {{ 7 - 2 }} {{ 7 * 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ 7.5 % 2 }} {{ 1 / 3 }} {{ 4 / 2 }} {{ true + 1 }}", {}),
    ("string and list operators", "{{ 'a' + 'b' }} {{ 'ab' * 3 }} {{ 2 * 'x' }} {{ 1 ~ 'x' ~ none ~ true ~ u }} {{ [1] + [2, 3] }} {{ [0] * 3 }}", {}),
    ("comparisons", "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'b' > 'a' }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ [1, 2] < [1, 3] }} {{ true == 1 }} {{ (1, 2) == [1, 2] }} {{ none == none }} {{ u == u }} {{ {'a': 1} == {'a': 1} }}", {}),
    ("and, or, not return operands", "{{ true and false }} {{ not true or true }} {{ 1 and 'x' }} {{ 0 or 'y' }} {{ none or [] }} {{ not none }} {{ not u }} {{ '' or u }}|", {}),
    ("in and not in", "{{ 1 in [1, 2] }} {{ 'ell' in 'hello' }} {{ 'a' in {'a': 1} }} {{ 3 not in [1] }} {{ 'x' in u }} {{ 'b' not in 'abc' }}", {}),
    ("ternary", "{{ 'yes' if x else 'no' }} [{{ 'a' if false }}] {{ 'b' if true }} {{ 1 if false else 2 if false else 3 }}", {"x": 0}),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 'a' ~ 'b' | upper }} {{ -2 ** 2 }} {{ 10 - 2 - 3 }} {{ 2 ** 3 ** 2 }} {{ not 1 == 2 }} {{ '1' + 2 | string }}", {}),
    ("percent formatting", "{{ '%s-%d' % ('a', 3) }} {{ '%s%%' % 50 }} {{ '%r' % 'q' }} {{ '%5s|%-4s|%.2s' % ('a', 'b', 'xyz') }} {{ '%03d %.3f %x' % (7, 2.5, 255) }} {{ 'no args' % u }}", {}),
    # tests
    ("is defined and none", "{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ x is not none }} {{ n is none }} {{ d.k is defined }} {{ d.z is defined }}", {"x": 1, "n": None, "d": {"k": 0}}),
    ("is type tests", "{{ 1 is number }} {{ true is number }} {{ true is integer }} {{ 1 is integer }} {{ 1.0 is float }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is sequence }} {{ 'a' is iterable }} {{ 1 is iterable }} {{ u is iterable }} {{ true is boolean }} {{ 'a' is sequence }} {{ none is mapping }} {{ u is callable }} {{ range is callable }}", {}),
    ("is true and false", "{{ true is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }} {{ flag is false }} {{ flag is not false }}", {"flag": False}),
    ("is comparison tests", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(2) }} {{ 'a' is equalto 'a' }} {{ 1 is eq 2 }} {{ 2 is gt 1 }} {{ 2 is ge 3 }} {{ 1 is lt 2 }} {{ 1 is ne 1 }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 1 is in [1] }} {{ none is sameas none }}", {}),
    # control flow
    ("if elif else", "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %} {% endfor %}", {}),
    ("loop variables", "{% for x in items %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}", {"items": ["a", "b", "c"]}),
    ("for else", "{% for x in [] %}x{% else %}empty{% endfor %} {% for x in [1] %}{{ x }}{% else %}no{% endfor %}", {}),
    ("for over a dict keeps key order", "{% for k in d %}{{ k }}={{ d[k] }};{% endfor %}", {"d": {"b": 1, "a": 2, "c": 3}}),
    ("for with unpacking of items()", "{% for k, v in d.items() %}{{ k }}:{{ v }} {% endfor %}", {"d": {"x": 1, "y": [2]}}),
    ("for with a filter", "{% for x in range(10) if x is odd %}{{ x }}{{ ',' if not loop.last }}{% endfor %} {% for m in msgs if m.role == 'user' %}{{ loop.index }}/{{ loop.length }}{{ m.content }} {% endfor %}", {"msgs": MSGS}),
    ("for scoping: set does not leave the loop", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 10 %}{{ x }};{% endfor %}{{ x }}", {}),
    ("break and continue", "{% for i in range(10) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("loop.changed", "{% for x in [1, 1, 2, 2, 1] %}{{ loop.changed(x) }} {% endfor %}", {}),
    ("loop previtem, nextitem, cycle", "{% for x in [1, 2, 3] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }} {{ loop.cycle('odd', 'even') }};{% endfor %}", {}),
    ("nested loops", "{% for row in [[1, 2], [3]] %}{% for x in row %}{{ loop.index }}{{ x }}{% endfor %}/{{ loop.index }} {% endfor %}", {}),
    ("for over a string", "{% for c in 'héllo' %}[{{ c }}]{% endfor %}", {}),
    ("for over undefined is empty", "{% for x in u %}x{% else %}none{% endfor %}", {}),
    # set, namespace, macro, blocks
    ("set", "{% set x = 'a' %}{% set y, z = 1, 2 %}{{ x }}{{ y }}{{ z }}{% set t = 1, 2 %}{{ t }}{% set (p, q) = 'ab' %}{{ q }}", {}),
    ("namespace", "{% set ns = namespace(count=0, found=false) %}{% for i in [1, 2, 3] %}{% set ns.count = ns.count + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }} {{ ns.missing }}|", {}),
    ("block set with filters", "{% set x %}hello {{ name }}{% endset %}[{{ x }}]{% set y | upper | trim %}  shout {% endset %}[{{ y }}]", {"name": "world"}),
    ("macro with defaults and keywords", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C', punct='.') }} [{{ greet() }}]", {}),
    ("macro kept in a namespace", "{% macro m(x) %}<{{ x }}>{% endmacro %}{% set ns = namespace(f=m) %}{% set ns.self = ns %}{{ ns.self.f(1) }}", {}),
    ("recursive macro", "{% macro render(v) %}{% if v is mapping %}{% for k, x in v.items() %}{{ k }}({{ render(x) }}){% endfor %}{% else %}{{ v }}{% endif %}{% endmacro %}{{ render({'a': {'b': 1}, 'c': 2}) }}", {}),
    ("filter block", "{% filter upper %}abc{{ 'd' }}{% endfilter %}", {}),
    ("generation block", "{% for m in msgs %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %} {% endfor %}", {"msgs": MSGS}),
    # subscripts and attributes
    ("subscripts and slices", "{{ l[0] }} {{ l[-1] }} {{ l[1:] }} {{ l[:2] }} {{ l[::-1] }} {{ l[::2] }} {{ l[-2:] }} {{ l[1:-1] }} {{ l[5:] }} {{ 'hello'[1:3] }} {{ 'hello'[-1] }} {{ 'héllo'[1] }} {{ 'hello'[::-1] }} [{{ l[10] }}]", {"l": [1, 2, 3, 4]}),
    ("messages reversed", "{% for m in messages[::-1] %}{{ m.role }} {% endfor %}", {"messages": MSGS}),
    ("attribute falls back to key", "{{ m.role }} {{ m['content'] }} {{ m.get('role') }} {{ m.get('x', 'dflt') }} {{ m.get('x') }} [{{ m.x }}] {{ l.0 }} {{ m.items() | list }}", {"m": {"role": "user", "content": "hi"}, "l": [7]}),
    ("none attribute is undefined", "[{{ n.foo }}] {{ n.foo is defined }} {{ n is none }}", {"n": None}),
    # filters
    ("trim", "[{{ '  a b  ' | trim }}] [{{ 'xxaxx' | trim('x') }}] [{{ u | trim }}] [{{ '\\n\\t x \\u3000' | trim }}]", {}),
    ("length and count", "{{ [1, 2, 3] | length }} {{ 'héllo' | length }} {{ {'a': 1} | count }} {{ u | length }}", {}),
    ("case filters", "{{ 'aBc' | upper }} {{ 'aBc' | lower }} {{ 'hELLO wORLD' | capitalize }} {{ 'foo bar-baz (qux o\\'neil' | title }}", {}),
    ("first and last", "{{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ 'abc' | first }} {{ 'abc' | last }} {{ {'a': 1, 'b': 2} | first }} [{{ [] | first }}] [{{ u | last }}]", {}),
    ("join", "{{ ['a', 'b'] | join(', ') }} {{ [1, 2] | join }} {{ users | join(',', attribute='name') }} {{ 'abc' | join('-') }}", {"users": USERS}),
    ("default", "{{ u | default('d') }} {{ none | default('d') }} {{ '' | default('d', true) }} {{ 'x' | d('d') }} {{ d.missing | default('m') }}", {"d": {}}),
    ("tojson", "{{ v | tojson }} {{ 'é' | tojson }} {{ 1.0 | tojson }} {{ none | tojson }} {{ (1, 2) | tojson }}", {"v": NESTED}),
    ("tojson indent", "{{ v | tojson(indent=2) }}", {"v": NESTED}),
    ("tojson sort_keys, ensure_ascii, separators", "{{ {'b': 1, 'a': [1, 2]} | tojson(sort_keys=true) }} {{ 'é🙂' | tojson(ensure_ascii=true) }} {{ {'a': [1, 2]} | tojson(separators=(',', ':')) }}", {}),
    ("string, int, float, list", "{{ 1 | string }} {{ '42' | int }} {{ '3.7' | int }} {{ 3.7 | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ ' 12 ' | int }} {{ '0x1A' | int(base=16) }} {{ '12' | float }} {{ 2 | float }} {{ 'abc' | list }} {{ none | string }} {{ [1] | string }}", {}),
    ("items filter", "{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %} {{ u | items | list }}", {"d": {"a": 1, "b": 2}}),
    ("replace", "{{ 'aaa' | replace('a', 'b') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'ab' | replace('', '-') }}", {}),
    ("reverse", "{{ 'abc' | reverse }} {{ [1, 2, 3] | reverse | list }} {% for x in [1, 2] | reverse %}{{ x }}{% endfor %}", {}),
    ("selectattr, rejectattr, select", "{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }} {{ msgs | rejectattr('role', 'equalto', 'user') | list | length }} {{ [0, 1, 2, 3] | select('odd') | list }} {{ [0, 1, '', 'a'] | select | list }} {{ [1, 2, 3] | reject('gt', 1) | list }} {{ users | selectattr('age') | list | length }} {{ users[:2] | selectattr('age', 'gt', 30) | map(attribute='name') | first }}", {"msgs": MSGS, "users": USERS}),
    ("map", "{{ [1, 2] | map('string') | join('-') }} {{ ['a', 'b'] | map('upper') | list }} {{ users | map(attribute='age', default=0) | list }} {{ [' a ', 'b '] | map('trim') | join }}", {"users": USERS}),
    ("indent", "{{ 'x\\ny' | indent(-5) }}|{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(4, first=true) }}|{{ 'a\\n\\nb' | indent('> ', blank=true) }}|{{ 'x\\n' | indent }}|", {}),
    ("safe and escape", "{{ '<b>' | safe }} {{ '<a href=\"x\">&\\'' | e }}", {}),
    ("unique and sort", "{{ ['b', 'A', 'a', 'c'] | unique | list }} {{ [3, 1, 2] | sort }} {{ ['b', 'A', 'a'] | sort }} {{ ['b', 'A', 'a'] | sort(case_sensitive=true) }} {{ [3, 1, 2] | sort(reverse=true) }} {{ users[:2] | sort(attribute='age') | map(attribute='name') | join }}", {"users": USERS}),
    ("max, min, sum, abs, round, dictsort, wordcount, format", "{{ [1, 5, 3] | max }} {{ [1, 5, 3] | min }} {{ [1, 2, 3] | sum }} {{ -3 | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 3.14159 | round(2) }} {{ 2.675 | round(2) }} {{ 3.1 | round(method='ceil') }} {{ 3.9 | round(0, 'floor') }} {{ {'b': 1, 'a': 2} | dictsort }} {{ 'a b  c' | wordcount }} {{ '%s=%d' | format('x', 3) }} {{ users[:2] | sum(attribute='age') }}", {"users": USERS}),
    ("batch and center", "{{ [1, 2, 3] | batch(2) | list }} {{ 'abcde' | batch(2, '-') | list }} [{{ 'ab' | center(7) }}] [{{ 'ab' | center(6) }}]", {}),
    ("dict views", "{{ d.items() }} {{ d.keys() }} {{ d.values() }} {{ d.keys() | list == ['a'] }} {{ d.keys() == ['a'] }} {{ d.items() | length }}", {"d": {"a": 1}}),
    ("is sameas", "{{ l is sameas l }} {{ [1] is sameas [1] }} {{ none is sameas none }} {{ 1 is sameas 1 }}", {"l": [1]}),
    ("list methods", "{{ [1, 2, 1].count(1) }} {{ ['a', 'b'].index('b') }}", {}),
    ("filters on undefined", "[{{ u | upper }}][{{ u | join }}][{{ u | list }}][{{ u | string }}][{{ u | default }}]", {}),
    # str and dict methods
    ("strip, split", "{{ '  x  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\\n\\nx\\n'.lstrip('\\n') }}|{{ 'x\\n\\n '.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ ' a b c '.split(none, 1) }}|{{ ' a b c '.rsplit(none, 1) }}|{{ 'a<sep>b'.split('<sep>') }}", {}),
    ("str methods", "{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith(('x', 'lo')) }} {{ 'Hi'.upper() }} {{ 'Hi'.lower() }} {{ 'a-b'.replace('-', '+') }} {{ 'hello wORLD-x'.title() }} {{ 'hELLO'.capitalize() }} {{ 'hello'.find('l') }} {{ 'hello'.find('z') }} {{ 'hello'.count('l') }} {{ ', '.join(['a', 'b']) }} {{ '{} and {}'.format(1, 'b') }} {{ '{name}!'.format(name='x') }} {{ '{0}{0}'.format('y') }} {{ 'a\\nb\\r\\nc'.splitlines() }} {{ '12'.isdigit() }} {{ 'ab'.isalpha() }}", {}),
    ("think split as Qwen3 does", "{% set c = content.split('</think>')[-1].lstrip('\\n') %}{% set r = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}[{{ r }}][{{ c }}]", {"content": "<think>\nreasoning here\n</think>\n\nanswer"}),
    ("dict methods", "{{ d.keys() | list }} {{ d.values() | list }} {% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %} {{ d.get('a') }} {{ d.get('z', 0) }} {{ d['items'] is defined }}", {"d": {"a": 1, "b": 2}}),
    # globals
    ("raise_exception not reached", "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}ok", {"messages": MSGS[1:]}),
    ("strftime_now", "{{ strftime_now('%Y') | length }} {{ strftime_now('%d %b %Y') | length }} {{ strftime_now('%%') }}", {}),
    ("range", "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(3, 0, -1) | list }} {{ range(0) | list }}", {}),
    ("dict and namespace globals", "{{ dict(a=1, b='x') }} {% set ns = namespace({'k': 1}, j=2) %}{{ ns.k }}{{ ns.j }}", {}),
    ("special tokens", "{{ bos_token }}x{{ eos_token }}", {"bos_token": "<s>", "eos_token": "</s>"}),
    ("undefined prints empty", "[{{ u }}][{{ d.missing }}][{{ u | default('') }}][{{ d['missing'] }}]", {"d": {}}),
    ("unicode passes through", "{{ s }}|{{ s | length }}|{{ s[0] }}|{{ s | upper }}", {"s": "日本語 🙂 ü"}),
    ("unicode case mapping", "{{ 'ÉCOLE Привет ŁÓDŹ Ωμέγα' | lower }} {{ 'straße émile ÿ' | upper }} {{ 'élan vital-ñu' | title }} {{ 'émile ZOLA' | capitalize }} {{ 'ÉTÉ'.isupper() }} {{ 'été'.islower() }} {{ ['b', 'Á', 'a', 'á'] | sort }}", {}),
    ("concat with numbers", "{{ 'n=' ~ 1.0 ~ ',' ~ 10 / 4 ~ ',' ~ 3 }}", {}),
    # real-world templates
    ("llama2 template", LLAMA2, {"messages": MSGS[:3] + [{"role": "user", "content": " again "}], "bos_token": "<s>", "eos_token": "</s>"}),
    ("gemma template", GEMMA, {"messages": MSGS[1:], "bos_token": "<bos>", "add_generation_prompt": True}),
    ("llama 3.1-like template with tools", LLAMA31_LIKE, {"messages": [MSGS[0], MSGS[1], {"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, {"role": "tool", "content": {"temp": 21}}], "tools": TOOLS, "bos_token": "<|begin_of_text|>", "add_generation_prompt": True}),
    ("llama 3.1-like template, no tools", LLAMA31_LIKE, {"messages": MSGS[1:2], "tools": None, "bos_token": "<|begin_of_text|>", "add_generation_prompt": False, "date_string": "1 Jan 2025"}),
    # errors
    ("error: raise_exception", "{% if true %}\n  {{ raise_exception('Only user and assistant roles are supported!') }}\n{% endif %}", {}, "Only user and assistant roles are supported!"),
    ("error: llama2 roles must alternate", LLAMA2, {"messages": [MSGS[1], MSGS[1]], "bos_token": "<s>", "eos_token": "</s>"}, "Conversation roles must alternate"),
    ("error: gemma has no system role", GEMMA, {"messages": MSGS, "bos_token": "<bos>"}, "System role not supported"),
    ("error: attribute of undefined", "{{ x.foo.bar }}", {}, "'x' is undefined"),
    ("error: attribute of a missing key", "line 1\n{{ m.missing.bar }}", {"m": {}}, "has no attribute 'missing'"),
    ("error: calling undefined", "{{ nofunc() }}", {}, "'nofunc' is undefined"),
    ("error: str + int", "line1\n{{ 'a' + 1 }}", {}, "can only concatenate str"),
    ("error: division by zero", "{{ 1 / 0 }}", {}, "division by zero"),
    ("error: unknown filter", "{{ 'a' | nosuchfilter }}", {}, "no filter named 'nosuchfilter'"),
    ("error: unknown test", "{{ 1 is nosuchtest }}", {}, "no test named 'nosuchtest'"),
    ("error: unclosed if", "{% if true %}x", {}, "'if'"),
    ("error: unclosed for", "{% for x in y %}\n{{ x }}", {}, "'endfor'"),
    ("error: unknown tag", "{% foo %}", {}, "unknown tag 'foo'"),
    ("error: stray endif", "a\n{% endif %}", {}, "unknown tag 'endif'"),
    ("error: stray else", "{% else %}", {}, "unknown tag 'else'"),
    ("error: missing operand", "{{ 1 + }}", {}, "unexpected end of print statement"),
    ("error: unclosed paren", "{{ foo( }}", {}, "unexpected '}'"),
    ("error: unterminated string", "{{ 'abc }}", {}, "unterminated string"),
    ("error: unclosed variable", "text {{ x ", {}, "unclosed '{{'"),
    ("error: unclosed comment", "{# abc", {}, "missing end of comment tag"),
    ("error: set attribute on a dict", "{% set d = {} %}{% set d.x = 1 %}", {}, "non-namespace object"),
    ("error: undefined in comparison", "{{ u < 1 }}", {}, "'u' is undefined"),
    ("error: unpacking", "{% for a, b in [1, 2] %}{% endfor %}", {}, "not iterable"),
    ("error: too many to unpack", "{% for a, b in ['abc'] %}{% endfor %}", {}, "too many values to unpack"),
    ("error: tojson of undefined", "{{ u | tojson }}", {}, "not JSON serializable"),
    ("error: iterating an int", "{% for x in 5 %}{% endfor %}", {}, "'int' object is not iterable"),
    ("error: break outside a loop", "{% break %}", {}, "outside a for loop"),
    ("error: macro with too many arguments", "{% macro m(a) %}{% endmacro %}\n\n{{ m(1, 2) }}", {}, "takes not more than 1 argument"),
    ("error: calling a string", "{{ 'a'() }}", {}, "not callable"),
    ("error: unsupported operand", "{{ [1] - [1] }}", {}, "unsupported operand"),
    ("error: length of an int", "{{ 5 | length }}", {}, "has no len()"),
    ("error: test with too many arguments", "{{ x is none none }}", {}, "takes 0 argument(s)"),
    ("error: tojson of a dict view", "{{ {'a': 1}.keys() | tojson }}", {}, "not JSON serializable"),
    ("error: int filter of undefined", "{{ u | int }}", {}, "'u' is undefined"),
    ("error: items of a list", "{{ [1] | items | list }}", {}, "Can only get item pairs from a mapping"),
]


def feature_cases():
    cases = []
    for entry in FEATURES:
        name, template, context = entry[:3]
        result = render(template, context)
        case = {"name": name, "template": template, "context": context, **result}
        if len(entry) > 3:
            if "error" not in result:
                sys.exit(f"{name}: jinja2 rendered it, an error was expected: {result['expected']!r}")
            case["error_contains"] = entry[3]
        elif "error" in result:
            sys.exit(f"{name}: jinja2 failed: {result['error']}")
        cases.append(case)
    return cases


def main():
    out = {
        "generator": f"scripts/make_chat_template_fixtures.py with jinja2 {jinja2.__version__}",
        "models": model_cases(),
        "features": feature_cases(),
    }
    path = DATA / "cases.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(f"{path}: {len(out['models'])} model cases, {len(out['features'])} feature cases")


if __name__ == "__main__":
    main()
