#!/usr/bin/python3
"""Writes the seed corpus for fuzz/readers_fuzz: for each reader, its selector byte (the reader's
index in readers_fuzz.cpp's kReaders) followed by a small valid file, taken (headed) from
../shared and tasks/ as tests/fuzz/readers_fuzz_test.cpp takes its seeds.

usage: /usr/bin/python3 fuzz/make_readers_seeds.py OUT_DIR [SHARED_DIR]
"""
import gzip
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def head(path, lines, max_bytes=4096):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        out = b""
        for _ in range(lines):
            line = f.readline()
            if not line or len(out) + len(line) > max_bytes:
                break
            out += line
    return out


def main():
    out = sys.argv[1]
    shared = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "..", "shared")
    hf = os.path.join(shared, "models", "stories260K", "hf")
    bench = os.path.join(shared, "benchmarks")
    tasks = os.path.join(ROOT, "tasks", "capability")
    read = lambda p: open(p, "rb").read()
    seeds = {  # index in kReaders -> list of (name, bytes thunk)
        0: [("stories260K", lambda: read(os.path.join(shared, "models", "stories260K", "stories260K.gguf")))],
        1: [("hf", lambda: read(os.path.join(hf, "tokenizer.json")))],
        2: [("mmlu", lambda: head(os.path.join(bench, "mmlu", "test", "machine_learning_test.csv"), 6))],
        3: [("gsm8k", lambda: head(os.path.join(bench, "gsm8k", "test.jsonl"), 3))],
        4: [("humaneval", lambda: head(os.path.join(bench, "humaneval", "HumanEval.jsonl"), 2, 8192))],
        5: [("truthfulqa", lambda: json.dumps(json.load(open(os.path.join(bench, "truthfulqa", "mc_task.json")))[:2],
                                              indent=1).encode())],
        6: [("bbq", lambda: head(os.path.join(bench, "bbq", "Religion.jsonl"), 3))],
        7: [("xstest", lambda: head(os.path.join(bench, "xstest", "xstest_prompts.csv"), 6))],
        8: [("harmbench", lambda: head(os.path.join(bench, "harmbench", "harmbench_behaviors_text_test.csv"), 6))],
        9: [("advbench", lambda: head(os.path.join(bench, "advbench", "harmful_behaviors.csv"), 6))],
        10: [("stories", lambda: b'{"id": "s1", "prompt": "Write a story.", "constraints": '
                                 b'[{"type": "max_words", "value": 50}]}\n')],
        11: [(name, lambda name=name: read(os.path.join(tasks, name + ".json")))
             for name in ("mmlu", "gsm8k", "toy_creativity")],
    }
    os.makedirs(out, exist_ok=True)
    written = 0
    for index, items in seeds.items():
        for name, thunk in items:
            try:
                data = thunk()
            except OSError as e:  # a file of ../shared that is not there: skip its seed
                print(f"skipped reader {index} seed {name}: {e}", file=sys.stderr)
                continue
            with open(os.path.join(out, f"{index:02d}-{name}"), "wb") as f:
                f.write(bytes([index]) + data)
            written += 1
    print(f"wrote {written} seeds to {out}")


if __name__ == "__main__":
    main()
