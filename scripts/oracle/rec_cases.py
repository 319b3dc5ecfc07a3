"""Reference recognition and classification cases for eval/src/rec/ and eval/src/cls.rs.

PaddleOCR's rules are re-implemented here with the libraries PaddleOCR uses (numpy for argmax, max and the
float32 mean; rapidfuzz for the edit distance), from ppocr/postprocess/rec_postprocess.py
(BaseRecLabelDecode, CTCLabelDecode), ppocr/data/imaug/label_ops.py (CTCLabelEncode, MultiLabelEncode,
ClsLabelEncode), ppocr/postprocess/cls_postprocess.py and ppocr/metrics/{rec,cls}_metric.py. Writes into
eval/tests/fixtures/rec/:
    dict_mixed.txt, arabic_dict.txt: dictionary files with CRLF and LF lines, empty lines, duplicates, ...
    cases.json: {"dicts": [...], "decode": [...], "encode": [...], "metric": [...], "cls": [...]}
Probabilities are stored as integers q and read as float32(q) / float32(65535) on both sides.

Needs (a scratch venv, not the oracle one): numpy==2.4.6 rapidfuzz==3.14.6, e.g.
    python3 -m venv /tmp/recvenv && /tmp/recvenv/bin/pip install numpy==2.4.6 rapidfuzz==3.14.6
Deterministic: every random draw comes from one seeded generator.

    python scripts/oracle/rec_cases.py [out_dir]
"""

import io
import json
import os
import re
import string
import sys

import numpy as np
from rapidfuzz.distance import Levenshtein

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "eval", "tests", "fixtures", "rec")
EPS = 1e-5
Q = np.float32(65535)

# Dictionary files, as bytes: CRLF and LF endings, an empty line, a line of one space, a duplicate ('a'
# twice), a multi-character line, a line starting with '\r', the ideographic space, and no final newline.
DICT_MIXED = "a\r\nb\r\n中\n文\n\n \nab\na\r\n\rc\r\n\u3000\n1\n😀\nZ".encode("utf-8")
DICT_ARABIC = "ا\nب\nج\n1\n2\n.\nx\n".encode("utf-8")


def read_dict(data, use_space_char):
    """BaseRecLabelDecode's character list for a dictionary file's bytes, CTC blank first."""
    chars = []
    for line in io.BytesIO(data).readlines():
        chars.append(line.decode("utf-8").strip("\n").strip("\r\n"))
    if use_space_char:
        chars.append(" ")
    return ["blank"] + chars


def lookup(entries):
    """PaddleOCR's self.dict: the last index of each entry."""
    return {c: i for i, c in enumerate(entries)}


def pred_reverse(pred):
    """BaseRecLabelDecode.pred_reverse: runs of [a-zA-Z0-9 :*./%+-] keep their order, pieces reverse."""
    pieces, run = [], ""
    for c in pred:
        if not re.search("[a-zA-Z0-9 :*./%+-]", c):
            if run:
                pieces.append(run)
            pieces.append(c)
            run = ""
        else:
            run += c
    if run:
        pieces.append(run)
    return "".join(pieces[::-1])


def ctc_decode(entries, preds, remove_duplicate, reverse):
    """CTCLabelDecode.__call__ on a [batch, time, classes] float32 array."""
    idx = preds.argmax(axis=2)
    prob = preds.max(axis=2)
    out = []
    for b in range(len(idx)):
        keep = np.ones(len(idx[b]), dtype=bool)
        if remove_duplicate:
            keep[1:] = idx[b][1:] != idx[b][:-1]
        keep &= idx[b] != 0
        conf = prob[b][keep]
        if len(conf) == 0:
            conf = [0]
        text = "".join(entries[i] for i in idx[b][keep])
        if reverse:
            text = pred_reverse(text)
        out.append([text, np.mean(conf).tolist()])
    return out


def ctc_encode(entries, text, max_len, lower, multi):
    """CTCLabelEncode.encode (and MultiLabelEncode's SAR limit); None where PaddleOCR returns None."""
    if len(text) == 0 or len(text) > max_len:
        return None
    if lower:
        text = text.lower()
    d = lookup(entries)
    idx = [d[c] for c in text if c in d]
    if not idx:
        return None
    # SARLabelEncode's dictionary adds only multi-character tokens, so it keeps the same characters.
    if multi and len(idx) >= max_len - 1:
        return None
    return idx


def normalize(text, is_filter, ignore_space):
    if ignore_space:
        text = text.replace(" ", "")
    if is_filter:
        text = "".join(c for c in text if c in string.digits + string.ascii_letters).lower()
    return text


def rec_metric(batches, is_filter, ignore_space):
    """RecMetric.__call__ per batch, then get_metric."""
    total_correct, total_all, total_dis = 0, 0, 0
    per_sample, per_batch = [], []
    for batch in batches:
        correct, count, dis = 0, 0, 0.0
        for pred, target in batch:
            p, t = normalize(pred, is_filter, ignore_space), normalize(target, is_filter, ignore_space)
            d = Levenshtein.normalized_distance(p, t)
            per_sample.append([p == t, d])
            dis += d
            correct += p == t
            count += 1
        total_correct += correct
        total_all += count
        total_dis += dis
        per_batch.append({"acc": correct / (count + EPS), "norm_edit_dis": 1 - dis / (count + EPS)})
    final = {
        "acc": 1.0 * total_correct / (total_all + EPS),
        "norm_edit_dis": 1 - total_dis / (total_all + EPS),
    }
    return per_sample, per_batch, final


def random_path(rng, time, classes, p_blank, p_repeat):
    path = []
    for t in range(time):
        if t > 0 and rng.random() < p_repeat:
            path.append(path[-1])
        elif rng.random() < p_blank:
            path.append(0)
        else:
            path.append(int(rng.integers(1, classes)))
    return path


def probs_for(rng, path, classes, levels, p_tie):
    """Probabilities quantised to `levels` steps whose maximum is at the path's class, with ties
    injected (a tie below the path's class makes numpy pick the lower class; the reference records what
    numpy does)."""
    step = 65535 // levels
    q = np.zeros((len(path), classes), dtype=np.int64)
    for t, c in enumerate(path):
        top_level = int(rng.integers(levels // 2, levels))
        q[t] = rng.integers(0, max(top_level, 1), classes) * step
        q[t, c] = top_level * step
        top = q[t, c]
        if rng.random() < p_tie:
            q[t, int(rng.integers(0, classes))] = top
    return q


def decode_cases(rng):
    dicts = {
        "mixed": (read_dict(DICT_MIXED, True), False),
        "arabic": (read_dict(DICT_ARABIC, False), True),
        "default": (["blank"] + list("0123456789abcdefghijklmnopqrstuvwxyz"), False),
    }
    cases = []
    for i in range(36):
        name = ["mixed", "arabic", "default"][i % 3]
        entries, reverse = dicts[name]
        classes = len(entries)
        batch = int(rng.integers(1, 4))
        time = int(rng.integers(1, 30))
        remove_duplicate = i % 7 != 3
        p_blank = 0.95 if i % 9 == 4 else rng.uniform(0.1, 0.6)
        paths = [random_path(rng, time, classes, p_blank, rng.uniform(0, 0.5)) for _ in range(batch)]
        levels = int(rng.choice([16, 256, 65535]))
        q = np.stack([probs_for(rng, p, classes, levels, rng.uniform(0, 0.4)) for p in paths])
        preds = q.astype(np.float32) / Q
        cases.append({
            "name": f"{name}_{i}",
            "dict": name,
            "is_remove_duplicate": remove_duplicate,
            "shape": [batch, time, classes],
            "q": q.reshape(-1).tolist(),
            "out": ctc_decode(entries, preds, remove_duplicate, reverse),
        })
    # Long paths: more than 128 kept steps takes numpy's pairwise sum into its recursive halves.
    for time in (129, 300):
        entries, _ = dicts["mixed"]
        classes = len(entries)
        path = [1 + (t % (classes - 1)) for t in range(time)]
        q = probs_for(rng, path, classes, 65535, 0.0)[None]
        preds = q.astype(np.float32) / Q
        cases.append({
            "name": f"long_{time}",
            "dict": "mixed",
            "is_remove_duplicate": True,
            "shape": [1, time, classes],
            "q": q.reshape(-1).tolist(),
            "out": ctc_decode(entries, preds, True, False),
        })
    return cases


def random_text(rng, alphabet, max_len):
    n = int(rng.integers(0, max_len + 1))
    return "".join(alphabet[int(rng.integers(0, len(alphabet)))] for _ in range(n))


def encode_cases(rng):
    mixed = read_dict(DICT_MIXED, True)
    default = ["blank"] + list("0123456789abcdefghijklmnopqrstuvwxyz")
    cases = []
    for dict_name, entries, lower, alphabet in [
        ("mixed", mixed, False, list("ab中文 \u3000c1😀ZzA?é") + ["\r"]),
        ("default", default, True, list("abcXYZ019 -_é\u212a\u0130")),
    ]:
        for max_len, transform in [(25, "ctc"), (25, "multi"), (6, "ctc"), (6, "multi")]:
            texts = ["", "?", "ab", "a" * max_len, "a" * (max_len + 1), "?" * max_len + "a"]
            texts += [random_text(rng, alphabet, max_len + 3) for _ in range(30)]
            items = []
            for text in texts:
                idx = ctc_encode(entries, text, max_len, lower, transform == "multi")
                target = None if idx is None else "".join(entries[i] for i in idx)
                items.append({"text": text, "indices": idx, "target": target})
            cases.append({"dict": dict_name, "max_text_length": max_len, "transform": transform, "items": items})
    return cases


def mutate(rng, text, alphabet):
    """The target with a few random edits (or none), sometimes with changed case or spaces only."""
    chars = list(text)
    kind = rng.random()
    if kind < 0.2:
        return text
    if kind < 0.3:
        return text.swapcase()
    if kind < 0.4:
        return " ".join(text) if text else " "
    for _ in range(int(rng.integers(1, 4))):
        op = rng.integers(0, 3)
        pos = int(rng.integers(0, len(chars) + 1))
        c = alphabet[int(rng.integers(0, len(alphabet)))]
        if op == 0:
            chars.insert(pos, c)
        elif chars:
            pos = min(pos, len(chars) - 1)
            if op == 1:
                del chars[pos]
            else:
                chars[pos] = c
    return "".join(chars)


def metric_cases(rng):
    alphabet = list("abcABC019 ,.-中文识别\u3000😀")
    cases = []
    for is_filter in (False, True):
        for ignore_space in (True, False):
            batches = []
            for _ in range(int(rng.integers(3, 7))):
                batch = []
                for _ in range(int(rng.integers(1, 9))):
                    target = random_text(rng, alphabet, 12)
                    batch.append([mutate(rng, target, alphabet), target])
                batches.append(batch)
            batches.append([["", ""], [" ", ""], ["", "a"]])
            per_sample, per_batch, final = rec_metric(batches, is_filter, ignore_space)
            cases.append({
                "is_filter": is_filter,
                "ignore_space": ignore_space,
                "batches": batches,
                "per_sample": per_sample,
                "per_batch": per_batch,
                "final": final,
            })
    return cases


def cls_cases(rng):
    label_list = ["0", "180"]
    batch = 40
    q = rng.integers(0, 16, (batch, 2)) * 4096
    probs = q.astype(np.float32) / Q
    idx = probs.argmax(axis=1)
    out = [[label_list[i], probs[b, i].tolist()] for b, i in enumerate(idx)]
    targets = [label_list[int(rng.integers(0, 2))] for _ in range(batch)]
    correct = sum(p == t for (p, _), t in zip(out, targets))
    return [{
        "label_list": label_list,
        "shape": [batch, 2],
        "q": q.reshape(-1).tolist(),
        "out": out,
        "targets": targets,
        "acc": correct / (batch + EPS),
    }]


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else OUT
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20240611)
    with open(os.path.join(out_dir, "dict_mixed.txt"), "wb") as f:
        f.write(DICT_MIXED)
    with open(os.path.join(out_dir, "arabic_dict.txt"), "wb") as f:
        f.write(DICT_ARABIC)
    data = {
        "dicts": [
            {"file": "dict_mixed.txt", "use_space_char": True, "entries": read_dict(DICT_MIXED, True)},
            {"file": "dict_mixed.txt", "use_space_char": False, "entries": read_dict(DICT_MIXED, False)},
            {"file": "arabic_dict.txt", "use_space_char": False, "entries": read_dict(DICT_ARABIC, False)},
        ],
        "lookup": {c: i for c, i in lookup(read_dict(DICT_MIXED, True)).items() if len(c) == 1},
        "decode": decode_cases(rng),
        "encode": encode_cases(rng),
        "metric": metric_cases(rng),
        "cls": cls_cases(rng),
    }
    path = os.path.join(out_dir, "cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
    print(f"{path}: {os.path.getsize(path)} bytes, {len(data['decode'])} decode cases")


if __name__ == "__main__":
    main()
