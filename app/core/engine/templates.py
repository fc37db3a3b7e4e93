"""Chat templates for GGUF models that carry none, by model architecture.

llama.cpp turns a list of chat messages into the model's prompt with a Jinja template,
normally the one stored in the GGUF file. Base models and some conversions have none, and
then the replies are garbage; :func:`template_for` gives a template for the common
architectures so that such a model still answers sensibly.

Each template takes ``messages`` (``role`` and ``content``), ``add_generation_prompt``
and ``bos_token``; a system message is kept where the format has a place for one and
folded into the first user turn where it has not. Tool results are shown to the model as
user turns in the formats without a tool role.
"""

from __future__ import annotations

__all__ = [
    "CHATML_TEMPLATE",
    "GEMMA3_TEMPLATE",
    "LLAMA3_TEMPLATE",
    "MISTRAL_TEMPLATE",
    "PHI3_TEMPLATE",
    "template_for",
]

# For the formats without a system role: ``preamble`` is the system message (with a blank
# line after it) to put before the first user text, ``turns`` the messages after it.
_FOLD_SYSTEM = """{%- if messages and messages[0]['role'] == 'system' -%}
  {%- set preamble = messages[0]['content'] | trim + '\n\n' -%}
  {%- set turns = messages[1:] -%}
{%- else -%}
  {%- set preamble = '' -%}
  {%- set turns = messages -%}
{%- endif -%}
"""

# Gemma turns: a system message is folded into the first user turn; the assistant
# speaks as "model"; every turn ends with <end_of_turn>.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n"
    + _FOLD_SYSTEM
    + """{%- for message in turns -%}
  {%- set role = 'model' if message['role'] == 'assistant' else 'user' -%}
  {{- '<start_of_turn>' + role + '\n' -}}
  {{- preamble if loop.first else '' -}}
  {{- message['content'] | trim -}}
  {{- '<end_of_turn>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
  {{- '<start_of_turn>model\n' -}}
{%- endif -%}
"""
)

# Llama 3 turns: a header with the role, a blank line, the text, <|eot_id|>.
LLAMA3_TEMPLATE = """{{ bos_token }}
{%- for message in messages -%}
  {%- set known = message['role'] in ['system', 'user', 'assistant'] -%}
  {%- set role = message['role'] if known else 'ipython' -%}
  {{- '<|start_header_id|>' + role + '<|end_header_id|>\n\n' -}}
  {{- message['content'] | trim -}}
  {{- '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
  {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
{%- endif -%}
"""

# ChatML (Qwen 2 and 3, many fine-tunes): <|im_start|>role, the text, <|im_end|>.
CHATML_TEMPLATE = """
{%- for message in messages -%}
  {{- '<|im_start|>' + message['role'] + '\n' -}}
  {{- message['content'] | trim -}}
  {{- '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
  {{- '<|im_start|>assistant\n' -}}
{%- endif -%}
"""

# Phi-3: <|role|>, the text, <|end|>.
PHI3_TEMPLATE = """
{%- for message in messages -%}
  {%- set known = message['role'] in ['system', 'user', 'assistant'] -%}
  {%- set role = message['role'] if known else 'user' -%}
  {{- '<|' + role + '|>\n' -}}
  {{- message['content'] | trim -}}
  {{- '<|end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
  {{- '<|assistant|>\n' -}}
{%- endif -%}
"""

# Mistral: [INST] user [/INST] answer</s>; a system message goes before the first
# user text.
MISTRAL_TEMPLATE = (
    "{{ bos_token }}\n"
    + _FOLD_SYSTEM
    + """{%- for message in turns -%}
  {%- if message['role'] == 'assistant' -%}
    {{- ' ' + message['content'] | trim + eos_token -}}
  {%- else -%}
    {{- '[INST] ' + (preamble if loop.first else '') + message['content'] | trim + ' [/INST]' -}}
  {%- endif -%}
{%- endfor -%}
"""
)

_BY_ARCHITECTURE = {
    "gemma": GEMMA3_TEMPLATE,
    "gemma2": GEMMA3_TEMPLATE,
    "gemma3": GEMMA3_TEMPLATE,
    "gemma3n": GEMMA3_TEMPLATE,
    "llama3": LLAMA3_TEMPLATE,
    "qwen": CHATML_TEMPLATE,
    "qwen2": CHATML_TEMPLATE,
    "qwen2moe": CHATML_TEMPLATE,
    "qwen3": CHATML_TEMPLATE,
    "qwen3moe": CHATML_TEMPLATE,
    "phi3": PHI3_TEMPLATE,
    "mistral": MISTRAL_TEMPLATE,
    "mistral3": MISTRAL_TEMPLATE,
}


def template_for(architecture: str) -> str | None:
    """The chat template for a model of ``architecture`` (GGUF's ``general.architecture``,
    such as ``gemma3``, ``qwen3``, ``llama3``), or None when there is no good guess.

    GGUF calls every Llama generation ``llama``; pass ``llama3`` for a Llama 3 model.
    """
    return _BY_ARCHITECTURE.get(architecture.strip().lower())
