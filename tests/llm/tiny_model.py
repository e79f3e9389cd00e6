"""A tiny, randomly initialised Llama with a tokenizer trained here, saved to a folder.

No hub download: the tokenizer is trained with the ``tokenizers`` library on a
few sentences and the weights are random, so the model "speaks" nonsense, but it
is a real causal LM that a real OpenAI-compatible server (``transformers serve``)
runs real inference on, token by token.

With ``say`` the weights are arranged so that the network's output always favours
one added token, whose text is ``say``: every generated token is that text.  The
UI tests use it to make a real model answer with an XSS payload.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "labtrack records experiments on clusters without internet",
    "a prompt template has variables such as topic and tone",
    "write a haiku about the sea and the sky",
    "summarise the following text in one sentence",
    "hello world, how are you today? I am fine, thank you.",
    "0 1 2 3 4 5 6 7 8 9 . , ; : ! ? ' \" < > / = { } ( ) [ ]",
]


# What the tests' model says: markup that must stay text wherever an output is shown.
PAYLOAD = '<img src=x onerror="window.__llm_xss=1">'


def build_tiny_llama(folder: Path, seed: int = 0, say: str | None = PAYLOAD) -> Path:
    """Write a tokenizer and a tiny Llama to ``folder``; return it (``say``: see above)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    if say:
        fast.add_tokens([say])
    fast.save_pretrained(folder)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
        tie_word_embeddings=not say, attention_bias=bool(say),
    )
    model = LlamaForCausalLM(config)
    if say:
        _always_say(model, fast.convert_tokens_to_ids(say))
    model.generation_config.eos_token_id = fast.eos_token_id
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(folder)
    return folder


def _always_say(model: object, token_id: int) -> None:
    """Make every position's hidden state one constant vector that ``token_id``'s row matches.

    The attention output projection's bias (the same in every position) dominates
    the residual stream; the token embeddings and the other weights are near zero,
    so after the final norm every position points the same way, and the LM head
    row of ``token_id`` is that direction, scaled far above every other row.
    """
    import torch

    with torch.no_grad():
        m = model.model  # type: ignore[attr-defined]
        m.embed_tokens.weight.mul_(1e-3)
        for layer in m.layers:
            for lin in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj,
                        layer.self_attn.o_proj, layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj):
                lin.weight.zero_()
            for lin in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                lin.bias.zero_()
            layer.self_attn.o_proj.bias.fill_(1.0)
        head = model.lm_head.weight  # type: ignore[attr-defined]
        head.normal_(0.0, 0.02)
        head[token_id] = 10.0


if __name__ == "__main__":
    import sys

    print(build_tiny_llama(Path(sys.argv[1])))
