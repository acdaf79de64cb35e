#!/usr/bin/env python3
"""Example grrm reward plug-in: a "grounded reasoning" reward, standard library only.

Protocol (one JSON object per line, both ways; flush after every reply):
  request: {"id": ..., "prompt": ..., "response": ..., "token_ids": [...],
            "metadata": {"target": ["<|a_12|>", ...], "fields": {...}}}
  reply:   {"id": ..., "score": float, "components": {name: float}}
       or  {"id": ..., "error": "message"}

Score = 0.5 * mention + 0.5 * length_ok, where
  mention   = 1 when the think block names the target item's category (dataset field
              `target_category`), else 0: the rationale should be about the right kind of item;
  length_ok = 1 when the think block has between --min-words and --max-words words, decaying
              linearly to 0 at twice the bounds' distance outside them.
Wire it up in the rewards config:
  [[terms]]
  name = "process"
  label = "grounding"
  weight = 0.2
  options = { program = "python3", args = ["rewards/examples/python_reward.py", "--min-words", "20"] }
"""
import argparse
import json
import sys


def think_text(prompt, response):
    """The think block's text; the block may have been opened in the (prefilled) prompt."""
    start = response.find("<think>")
    end = response.find("</think>")
    if end < 0:
        return None
    if start < 0:
        return response[:end] if prompt.rstrip().endswith("<think>") else None
    return response[start + len("<think>"):end] if start < end else None


def length_factor(words, lo, hi):
    if lo <= words <= hi:
        return 1.0
    if words < lo:
        return max(0.0, 1.0 - (lo - words) / max(lo, 1))
    return max(0.0, 1.0 - (words - hi) / max(hi, 1))


def score(req, args):
    category = req["metadata"]["fields"].get("target_category")
    if not isinstance(category, str) or not category:
        raise ValueError("dataset field `target_category` is missing")
    think = think_text(req["prompt"], req["response"])
    if think is None:
        return {"score": 0.0, "components": {"mention": 0.0, "think_words": 0.0, "length_ok": 0.0}}
    words = len(think.split())
    mention = 1.0 if category.lower() in think.lower() else 0.0
    length_ok = length_factor(words, args.min_words, args.max_words)
    return {
        "score": 0.5 * mention + 0.5 * length_ok,
        "components": {"mention": mention, "think_words": float(words), "length_ok": length_ok},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-words", type=int, default=20)
    parser.add_argument("--max-words", type=int, default=400)
    args = parser.parse_args()
    for line in sys.stdin:
        req_id = None
        try:
            req = json.loads(line)
            req_id = req.get("id")
            reply = score(req, args)
        except Exception as e:  # report, keep serving the next requests
            print(f"python_reward: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            reply = {"error": f"{type(e).__name__}: {e}"}
        reply["id"] = req_id
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
