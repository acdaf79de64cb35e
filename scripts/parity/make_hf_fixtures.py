"""Builds small random Qwen3, Qwen2 and Llama models with Hugging Face transformers, saves them,
and records reference logits and greedy continuations: the fixtures grrm's parity test compares
against (model/tests/hf_parity.rs). Run on a machine with torch + transformers:

    python3 scripts/parity/make_hf_fixtures.py model/tests/fixtures/hf

Weights are drawn wider than HF's 0.02 init so logits differ clearly between tokens.
"""
import json
import os
import sys

import torch
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM)

OUT = sys.argv[1] if len(sys.argv) > 1 else "model/tests/fixtures/hf"
COMMON = dict(vocab_size=160, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
              rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0)
CASES = {
    "qwen3": (Qwen3ForCausalLM, Qwen3Config(head_dim=16, rope_theta=1000000.0,
                                            tie_word_embeddings=True, **COMMON)),
    "qwen2": (Qwen2ForCausalLM, Qwen2Config(rope_theta=10000.0, tie_word_embeddings=False,
                                            **COMMON)),
    "llama": (LlamaForCausalLM, LlamaConfig(rope_theta=500000.0, tie_word_embeddings=False,
                                            attention_bias=False, **COMMON)),
}
SEQS = [[5, 17, 99, 3, 42, 42, 7, 150, 64, 11, 23], [8, 120, 33, 4, 61, 90, 2]]
NEW_TOKENS = 8


def main():
    torch.manual_seed(1234)
    for name, (cls, cfg) in CASES.items():
        model = cls(cfg).float().eval()
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "norm" in pname:
                    p.copy_(1.0 + 0.2 * torch.randn_like(p))
                elif pname.endswith("bias"):
                    p.copy_(0.1 * torch.randn_like(p))
                else:
                    p.normal_(0.0, 0.2)
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        model.save_pretrained(d, safe_serialization=True)
        T = max(len(s) for s in SEQS)
        ids = torch.zeros(len(SEQS), T, dtype=torch.long)
        mask = torch.zeros(len(SEQS), T, dtype=torch.long)
        for b, s in enumerate(SEQS):
            ids[b, :len(s)] = torch.tensor(s)
            mask[b, :len(s)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits
            greedy = []
            for s in SEQS:
                cur = torch.tensor([s])
                for _ in range(NEW_TOKENS):
                    nxt = model(input_ids=cur).logits[0, -1].argmax()
                    cur = torch.cat([cur, nxt.view(1, 1)], dim=1)
                greedy.append(cur[0, len(s):].tolist())
        expected = {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "sequences": SEQS,
            # logits[b] holds the real positions of sequence b only: [len_b, vocab]
            "logits": [logits[b, :len(s)].tolist() for b, s in enumerate(SEQS)],
            "greedy": greedy,
        }
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump(expected, f)
        print(name, "saved", sum(p.numel() for p in model.parameters()), "parameters")


if __name__ == "__main__":
    main()
