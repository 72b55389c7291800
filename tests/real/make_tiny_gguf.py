"""Write a tiny random-weight llama GGUF that llama.cpp loads and serves.

Run with the llama venv's python (it has `gguf` and `numpy`; the project venv does not):

    /opt/runner-real/llama-0.3.36/bin/python tests/real/make_tiny_gguf.py OUT.gguf

The model is gibberish by design, but its shape makes the tests exact:

* tokenizer: SentencePiece-style "llama" vocabulary: single characters (printable ASCII and
  U+2581 for a space), the 256 byte-fallback tokens (any text tokenizes), and whole words
  from `WORDS` (with every prefix, so SentencePiece's pairwise merges reach them). A listed word
  after a space is ONE token, as the runner's estimate assumes; any other word costs one token
  per character, several times the estimate. Tests choose the ratio with their text: real
  overflows the runner's estimate did not foresee, or estimates that are right;
* the model can only ever sample single printable characters: end-of-sequence, unknown, byte
  and word tokens are pushed down by a residual dimension held constant through every layer
  that meets a large negative output weight. So every answer is exactly `max_tokens`
  printable characters and ends with finish_reason "length" (a shorter one was cut);
* n_embd 64, 2 layers, 4 heads, context 2048, f32, ~0.6 MB, written in well under a second.
"""

from __future__ import annotations

import argparse

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# Common English words; tests/real/texts.py builds documents from them.
WORDS = (
    "the of and to in is it that was for on are with as at be this have from or one had by word "
    "but not what all were we when your can said there use an each which she do how their if will "
    "up other about out many then them these so some her would make like him into time has look "
    "two more write go see number no way could people my than first water been call who oil its "
    "now find long down day did get come made may part"
).split()


def vocab() -> tuple[list[str], list[float], list[int], list[bool]]:
    """Tokens, scores, types, and which tokens the model may sample (single characters)."""
    import gguf
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(gguf.TokenType.BYTE)
    tokens.append("\u2581")  # SentencePiece's space
    types.append(gguf.TokenType.NORMAL)
    for c in range(0x21, 0x7F):  # printable ASCII, one token per character
        tokens.append(chr(c))
        types.append(gguf.TokenType.NORMAL)
    sampled = [t == gguf.TokenType.NORMAL for t in types]
    seen = set(tokens)
    for word in WORDS:  # "▁w", "▁wo", "▁wor", "▁word": each merge step exists
        for k in range(1, len(word) + 1):
            piece = "\u2581" + word[:k]
            if piece not in seen:
                seen.add(piece)
                tokens.append(piece)
                types.append(gguf.TokenType.NORMAL)
                sampled.append(False)
    # SentencePiece merges the best-scoring pair first: longer pieces win.
    scores = [float(len(t)) if ty == gguf.TokenType.NORMAL else 0.0 for t, ty in zip(tokens, types)]
    return tokens, scores, [int(t) for t in types], sampled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--n-embd", type=int, default=64)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-ff", type=int, default=128)
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    import numpy as np  # here, not at the top: the tests import WORDS from the project's venv

    import gguf

    tokens, scores, types, sampled = vocab()
    n_vocab, d, ff = len(tokens), args.n_embd, args.n_ff
    head_dim = d // args.n_head
    rng = np.random.default_rng(args.seed)

    def rand(*shape: int, scale: float = 0.1) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = gguf.GGUFWriter(args.out, "llama")
    w.add_name("runner-tiny-random")
    w.add_context_length(args.context)
    w.add_embedding_length(d)
    w.add_block_count(args.n_layer)
    w.add_feed_forward_length(ff)
    w.add_head_count(args.n_head)
    w.add_head_count_kv(args.n_head)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)  # all f32
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHATML)

    # numpy shapes are (rows=out, cols=in); GGUF stores them reversed, as llama.cpp expects
    # token_embd [n_embd, n_vocab], attn_q [n_embd, n_embd], ffn_gate [n_embd, n_ff], ...
    embd = rand(n_vocab, d, scale=1.0)
    embd[:, 0] = 8.0  # dimension 0: a constant that no layer writes to (see below)
    w.add_tensor("token_embd.weight", embd)
    for i in range(args.n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(d, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", rand(d, d))
        w.add_tensor(p + "attn_k.weight", rand(d, d))
        w.add_tensor(p + "attn_v.weight", rand(d, d))
        out = rand(d, d)
        out[0, :] = 0.0
        w.add_tensor(p + "attn_output.weight", out)
        w.add_tensor(p + "ffn_norm.weight", np.ones(d, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", rand(ff, d))
        w.add_tensor(p + "ffn_up.weight", rand(ff, d))
        down = rand(d, ff)
        down[0, :] = 0.0
        w.add_tensor(p + "ffn_down.weight", down)
    w.add_tensor("output_norm.weight", np.ones(d, dtype=np.float32))
    head = rand(n_vocab, d, scale=0.5)
    allowed = np.array(sampled)
    head[allowed, 0] = 0.0
    head[~allowed, 0] = -50.0  # never sample </s>, <unk>, <s>, a raw byte or a word
    w.add_tensor("output.weight", head)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
