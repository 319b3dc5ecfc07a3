#!/usr/bin/env python3
"""Writes the character dictionary that a PP-OCR rec ONNX model keeps in its metadata, as a dictionary file.

    .oracle/bin/python scripts/oracle/dump_dict.py models/ch_PP-OCRv4_rec_infer.onnx models/ppocrv4_rec_keys.txt

PP-OCRv4 rec ships without a keys file: its dictionary is the metadata key `character`, newline-separated.
rapidocr (rapidocr_onnxruntime 1.4.4, ch_ppocr_rec/text_recognize.py and utils/infer_engine.py) reads it
through onnxruntime's `custom_metadata_map`, splits it with `str.splitlines()`, appends " " and puts
"blank" in front. This script writes the splitlines() entries one per line ("\\n" endings, UTF-8), the
space and the blank left out, so that reading the file as PaddleOCR reads `character_dict_path` with
`use_space_char: true` gives rapidocr's list exactly: the script reads it back that way and checks.
(For the models of rapidocr 1.4.4 that list is ppocr_keys_v1.txt's, 6623 entries, plus the space.)

Fails, naming the model, when the metadata has no `character` key, or when an entry could not survive a
round trip through a dictionary file (none can: splitlines() leaves no "\\r" or "\\n" in an entry).
"""

import argparse
import io
import os
import sys

import onnxruntime as ort


def rapidocr_characters(model):
    """rapidocr's character list for a model, blank and space included, and the raw metadata entries."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if "character" not in meta:
        sys.exit(f"{model}: no 'character' key in the ONNX metadata (keys: {sorted(meta)})")
    entries = meta["character"].splitlines()
    return ["blank"] + entries + [" "], entries


def paddleocr_characters(data):
    """BaseRecLabelDecode's list for a dictionary file's bytes with use_space_char true, CTC blank first."""
    chars = [line.decode("utf-8").strip("\n").strip("\r\n") for line in io.BytesIO(data).readlines()]
    return ["blank"] + chars + [" "]


def main():
    parser = argparse.ArgumentParser(description="Writes a rec model's character metadata as a dictionary file.")
    parser.add_argument("model", help="a rec ONNX model with 'character' metadata")
    parser.add_argument("out", help="the dictionary file to write")
    args = parser.parse_args()

    expected, entries = rapidocr_characters(args.model)
    data = "".join(e + "\n" for e in entries).encode("utf-8")
    if paddleocr_characters(data) != expected:
        sys.exit(f"{args.model}: the 'character' metadata does not round-trip through a dictionary file")
    tmp = args.out + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.out)
    print(f"{args.out}: {len(entries)} entries from {args.model} (+ space + blank = {len(expected)} classes)")


if __name__ == "__main__":
    main()
