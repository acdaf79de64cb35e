"""Loads checkpoints that grrm saved (e.g. after a training step) with transformers and checks
their logits against the expected values grrm wrote beside them: proof that what grrm writes is
what transformers reads.

    python3 scripts/parity/check_grrm_saved.py DIR [DIR ...]
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM


def main():
    worst = 0.0
    for d in sys.argv[1:]:
        model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
        exp = json.load(open(f"{d}/grrm_expected.json"))
        for s, want in zip(exp["sequences"], exp["logits"]):
            with torch.no_grad():
                got = model(input_ids=torch.tensor([s])).logits[0]
            err = (got - torch.tensor(want)).abs().max().item()
            worst = max(worst, err)
            print(d, "len", len(s), "max |logit err|", f"{err:.3e}")
    print("worst", f"{worst:.3e}")
    sys.exit(0 if worst < 1e-3 else 1)


if __name__ == "__main__":
    main()
