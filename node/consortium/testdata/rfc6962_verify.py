#!/usr/bin/env python3
"""Verify ccnode receipt-log proofs with nothing but hashlib.

An independent implementation of RFC 9162 section 2.1.3.2 (inclusion) and
2.1.4.2 (consistency) over RFC 6962 hashing, so that a test can show the
node's proofs verify without ccnode's or transparency-dev's code.

Reads one JSON object on stdin; byte strings are standard base64:
  {"leaf": ..., "index": N, "size": N, "root": ..., "inclusion": [...],
   "from": N, "from_root": ..., "to": N, "to_root": ..., "consistency": [...]}
Exits 0 when both proofs verify, 1 otherwise.
"""
import base64
import hashlib
import json
import sys


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, lhash, proof, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, lhash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_root, second_root, proof):
    if first == 0 or first > second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first & (first - 1) == 0:
        proof = [first_root] + proof
    if not proof:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


def main():
    d = json.load(sys.stdin)
    b = base64.b64decode
    ok_inc = verify_inclusion(d["index"], d["size"], leaf_hash(b(d["leaf"])),
                              [b(x) for x in d["inclusion"]], b(d["root"]))
    ok_con = verify_consistency(d["from"], d["to"], b(d["from_root"]), b(d["to_root"]),
                                [b(x) for x in d["consistency"]])
    print("inclusion", "ok" if ok_inc else "FAILED")
    print("consistency", "ok" if ok_con else "FAILED")
    sys.exit(0 if ok_inc and ok_con else 1)


if __name__ == "__main__":
    main()
