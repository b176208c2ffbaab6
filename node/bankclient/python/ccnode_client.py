#!/usr/bin/env python3
"""A bank's client of a ccnode node, written from credit/SPEC.md alone.

Standard library plus `cryptography` (Debian: python3-cryptography). It
shares no code with ccnode: it is the proof that the spec is enough.

  ccnode_client.py --vectors credit/testdata/vectors.json
      reproduces every test vector (canonical bytes, signatures, digests,
      the inclusion proof and the checkpoint) and exits non-zero on any
      difference.

  ccnode_client.py --node https://HOST:PORT --ca-file ca.crt --bank BANK \\
      --key bank.key --consent consent.json --region-keys regions.json
      signs a query, posts it to the bank's home node, verifies every
      region's receipt (signature, query, id, report digest), the home
      region's acknowledgements, and one inclusion proof with its signed
      checkpoint; prints a summary. Exit 0: all verified; 1: a check
      failed or the node refused (its code is printed); 2: bad arguments.
"""

import argparse
import base64
import datetime
import hashlib
import json
import re
import secrets
import ssl
import sys
import time
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

# SPEC 1: the categories in report order.
CATEGORIES = [
    "registration", "licensing", "penalty", "tax", "social_insurance", "housing_fund",
    "utilities", "judicial", "customs", "ip", "honors", "financial",
]

# SPEC 4: signing tags; SPEC 3.6: hash domains.
TAG_CONSENT_ENTERPRISE = "ccnode/consent-enterprise/v1"
TAG_CONSENT_REGION = "ccnode/consent-region/v1"
TAG_QUERY = "ccnode/query/v1"
TAG_RECEIPT = "ccnode/receipt/v1"
TAG_ACK = "ccnode/ack/v1"
TAG_RECEIPT_READ = "ccnode/receipt-read/v1"
DOMAIN_CONSENT = "ccnode/consent/v1"
DOMAIN_QUERY_DIGEST = "ccnode/query-digest/v1"
DOMAIN_RECEIPT_ID = "ccnode/receipt-id/v1"
DOMAIN_RECEIPT_DIGEST = "ccnode/receipt-digest/v1"
DOMAIN_REPORT = "ccnode/report/v1"


class VerifyError(Exception):
    """A check of the spec failed."""


class Refused(Exception):
    """The node answered with an error body (SPEC 8)."""

    def __init__(self, status, code, message):
        super().__init__("HTTP %d %s: %s" % (status, code, message))
        self.status, self.code, self.message = status, code, message


# ---------------------------------------------------------------- SPEC 2

def enc_string(s):
    """SPEC 2.1: a JSON string as ccnode writes it."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif o < 0x20:
            out.append("\\u%04x" % o)
        elif o in (0x2028, 0x2029):
            out.append("\\u%04x" % o)
        elif 0xD800 <= o <= 0xDFFF:
            # A lone surrogate (from a \ud800 escape) is not UTF-8.
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def utc_time(s):
    """An RFC 3339 time as (UTC datetime to the second, nanoseconds): comparable."""
    m = _TIME.match(s)
    if not m:
        raise VerifyError("time %r is not RFC 3339" % s)
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    frac = (m.group(7) or ".")[1:10]  # digits past the ninth are cut, as the node does
    ns = int(frac.ljust(9, "0")) if frac else 0
    t = datetime.datetime(y, mo, d, h, mi, sec)
    z = m.group(8)
    if z != "Z":
        sign = 1 if z[0] == "+" else -1
        t -= sign * datetime.timedelta(hours=int(z[1:3]), minutes=int(z[4:6]))
    return t, ns


def canonical_time(s):
    """SPEC 2.2: an RFC 3339 time as UTC, fraction without trailing zeros."""
    t, ns = utc_time(s)
    out = "%04d-%02d-%02dT%02d:%02d:%02d" % (t.year, t.month, t.day, t.hour, t.minute, t.second)
    if ns:
        out += "." + ("%09d" % ns).rstrip("0")
    return '"' + out + 'Z"'


def now_time():
    """The current time in canonical form (without quotes)."""
    ns = time.time_ns()
    t = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if ns % 10**9:
        s += "." + ("%09d" % (ns % 10**9)).rstrip("0")
    return s + "Z"


def enc_int(v):
    if not isinstance(v, int) or isinstance(v, bool):
        raise VerifyError("want an integer, got %r" % (v,))
    return str(v)


def enc_bytes(v):
    """A byte string: standard base64 with padding; None is null."""
    if v is None:
        return "null"
    return '"' + base64.b64encode(unb64(v)).decode() + '"'


def unb64(s):
    return base64.b64decode(s, validate=True)


def normalize_categories(cs):
    """SPEC 2.3: report order, no duplicates."""
    for c in cs:
        if c not in CATEGORIES:
            raise VerifyError("unknown category %r" % c)
    return sorted(set(cs), key=CATEGORIES.index)


def enc_categories(cs):
    if cs is None:
        return "null"
    return "[" + ",".join(enc_string(c) for c in normalize_categories(cs)) + "]"


def obj(pairs):
    return "{" + ",".join(enc_string(k) + ":" + v for k, v in pairs) + "}"


# ---------------------------------------------------------------- SPEC 3

def enc_consent(g, unsigned=()):
    """SPEC 3.1; the fields named in unsigned are written null (SPEC 4)."""
    if g is None:
        return "null"
    certs = g.get("enterprise_cert")
    certs_enc = "null" if certs is None else "[" + ",".join(enc_bytes(c) for c in certs) + "]"
    return obj([
        ("v", enc_int(g["v"])),
        ("id", enc_string(g["id"])),
        ("uscc", enc_string(g["uscc"])),
        ("grantee", enc_string(g["grantee"])),
        ("categories", enc_categories(g["categories"])),
        ("purpose", enc_string(g["purpose"])),
        ("valid_from", canonical_time(g["valid_from"])),
        ("valid_until", canonical_time(g["valid_until"])),
        ("region", enc_string(g["region"])),
        ("signed_at", canonical_time(g["signed_at"])),
        ("enterprise_cert", certs_enc),
        ("enterprise_sig", "null" if "enterprise_sig" in unsigned else enc_bytes(g.get("enterprise_sig"))),
        ("region_sig", "null" if "region_sig" in unsigned else enc_bytes(g.get("region_sig"))),
    ])


def enc_query(q, unsigned=False):
    """SPEC 3.2; unsigned writes the query's own sig as null."""
    return obj([
        ("v", enc_int(q["v"])),
        ("bank", enc_string(q["bank"])),
        ("uscc", enc_string(q["uscc"])),
        ("categories", enc_categories(q["categories"])),
        ("purpose", enc_string(q["purpose"])),
        ("consent_id", enc_string(q["consent_id"])),
        ("consent", enc_consent(q.get("consent"))),
        ("nonce", enc_string(q["nonce"])),
        ("time", canonical_time(q["time"])),
        ("sig", "null" if unsigned else enc_bytes(q.get("sig"))),
    ])


def enc_receipt(r, unsigned=False):
    """SPEC 3.3."""
    return obj([
        ("v", enc_int(r["v"])),
        ("id", enc_string(r["id"])),
        ("query", enc_query(r["query"])),
        ("requester", enc_string(r["requester"])),
        ("answerer", enc_string(r["answerer"])),
        ("categories", enc_categories(r["categories"])),
        ("report_digest", enc_bytes(r["report_digest"])),
        ("record_count", enc_int(r["record_count"])),
        ("time", canonical_time(r["time"])),
        ("sig", "null" if unsigned else enc_bytes(r.get("sig"))),
    ])


def enc_ack(a, unsigned=False):
    """SPEC 3.4."""
    return obj([
        ("v", enc_int(a["v"])),
        ("receipt_id", enc_string(a["receipt_id"])),
        ("receipt_digest", enc_bytes(a["receipt_digest"])),
        ("requester", enc_string(a["requester"])),
        ("time", canonical_time(a["time"])),
        ("sig", "null" if unsigned else enc_bytes(a.get("sig"))),
    ])


def enc_receipt_read(rr):
    """SPEC 3.5: no sig field at all."""
    return obj([
        ("v", enc_int(rr["v"])),
        ("bank", enc_string(rr["bank"])),
        ("receipt_id", enc_string(rr["receipt_id"])),
        ("time", canonical_time(rr["time"])),
    ])


def tagged(tag, canonical):
    return tag.encode() + b"\n" + canonical.encode("utf-8")


def sha256(b):
    return hashlib.sha256(b).digest()


# SPEC 4: the signed messages.
def consent_enterprise_message(g):
    return tagged(TAG_CONSENT_ENTERPRISE, enc_consent(g, unsigned=("enterprise_sig", "region_sig")))


def consent_region_message(g):
    return tagged(TAG_CONSENT_REGION, enc_consent(g, unsigned=("region_sig",)))


def query_message(q):
    return tagged(TAG_QUERY, enc_query(q, unsigned=True))


def receipt_message(r):
    return tagged(TAG_RECEIPT, enc_receipt(r, unsigned=True))


def ack_message(a):
    return tagged(TAG_ACK, enc_ack(a, unsigned=True))


def receipt_read_message(rr):
    return tagged(TAG_RECEIPT_READ, enc_receipt_read(rr))


# SPEC 3.6: derived values.
def consent_commitment(g):
    return sha256(tagged(DOMAIN_CONSENT, enc_consent(g)))


def query_digest(q):
    return sha256(tagged(DOMAIN_QUERY_DIGEST, enc_query(q)))


def receipt_id(answerer, q):
    inner = obj([("answerer", enc_string(answerer)), ("query", enc_string(query_digest(q).hex()))])
    return sha256(tagged(DOMAIN_RECEIPT_ID, inner))[:16].hex()


def receipt_leaf(r):
    return enc_receipt(r).encode("utf-8")


def receipt_digest(r):
    return sha256(tagged(DOMAIN_RECEIPT_DIGEST, enc_receipt(r)))


def sign(key, msg):
    return key.sign(msg)


def verify(pub, msg, sig, what):
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    except (InvalidSignature, ValueError) as e:
        raise VerifyError("%s: signature does not verify (%s)" % (what, str(e) or "wrong key or altered bytes"))


# ---------------------------------------------------------------- SPEC 6

class RawNumber(str):
    """A JSON number kept as written (SPEC 6: numbers are not reformatted)."""


def loads_raw(text):
    return json.loads(text, parse_float=RawNumber, parse_int=RawNumber)


def utf8_key(k):
    """A key's UTF-8 bytes, a lone surrogate counted as U+FFFD as ccnode decodes it."""
    return re.sub("[\ud800-\udfff]", "\ufffd", k).encode("utf-8")


def enc_value(v):
    """Canonical attributes: keys sorted by UTF-8 bytes, numbers as written."""
    if isinstance(v, RawNumber):
        return str(v)
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return enc_string(v)
    if isinstance(v, list):
        return "[" + ",".join(enc_value(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=utf8_key)
        return "{" + ",".join(enc_string(k) + ":" + enc_value(v[k]) for k in keys) + "}"
    raise VerifyError("attribute value %r is not JSON" % (v,))


def enc_record(r):
    return obj([
        ("uscc", enc_string(r["uscc"])),
        ("source", enc_string(r["source"])),
        ("source_id", enc_string(r["source_id"])),
        ("category", enc_string(r["category"])),
        ("date", enc_string(r["date"])),
        ("attrs", enc_value(r["attrs"])),
    ])


def enc_report(rep):
    sections = []
    for s in rep["sections"]:
        recs = s["records"]
        recs_enc = "null" if recs is None else "[" + ",".join(enc_record(r) for r in recs) + "]"
        sections.append(obj([("category", enc_string(s["category"])), ("records", recs_enc)]))
    return obj([("uscc", enc_string(rep["uscc"])), ("sections", "[" + ",".join(sections) + "]")])


def report_digest(rep):
    return sha256(tagged(DOMAIN_REPORT, enc_report(rep)))


# ---------------------------------------------------------------- SPEC 7.2

def hash_leaf(b):
    return sha256(b"\x00" + b)


def hash_children(l, r):
    return sha256(b"\x01" + l + r)


def verify_inclusion(index, size, leaf_hash, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        raise VerifyError("inclusion: leaf index %d outside a tree of %d" % (index, size))
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise VerifyError("inclusion: proof longer than the tree")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise VerifyError("inclusion: the proof does not lead to the root")


def verify_consistency(size1, size2, proof, root1, root2):
    """RFC 9162 section 2.1.4.2, for 0 < size1 <= size2."""
    if not 0 < size1 <= size2:
        raise VerifyError("consistency: want 0 < %d <= %d" % (size1, size2))
    if size1 == size2:
        if proof or root1 != root2:
            raise VerifyError("consistency: equal sizes need an empty proof and equal roots")
        return
    if size1 & (size1 - 1) == 0:
        proof = [root1] + list(proof)
    if not proof:
        raise VerifyError("consistency: empty proof")
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise VerifyError("consistency: proof longer than the tree")
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    if fr != root1 or sr != root2 or sn != 0:
        raise VerifyError("consistency: the proof does not lead to both roots")


def merkle_root(leaves):
    """RFC 6962 MTH, for the vectors' log."""
    if len(leaves) == 1:
        return hash_leaf(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hash_children(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


# ---------------------------------------------------------------- SPEC 7.3

_ORIGIN = re.compile(r"^ccnode/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/([a-z0-9][a-z0-9_-]{0,31})$")


def note_key_hash(origin, pub):
    return sha256(origin.encode() + b"\n\x01" + pub)[:4]


def verifier_key(origin, pub):
    return "%s+%s+%s" % (origin, note_key_hash(origin, pub).hex(), base64.b64encode(b"\x01" + pub).decode())


def verify_checkpoint(note, region, pub, network=None):
    """Returns (size, root) of a region's signed checkpoint note."""
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        raise VerifyError("checkpoint: no blank line before the signature")
    text += "\n"
    lines = text.split("\n")[:-1]
    if len(lines) != 3:
        raise VerifyError("checkpoint: want exactly origin, size and root, got %d lines" % len(lines))
    origin, size_s, root_b64 = lines
    m = _ORIGIN.match(origin)
    if not m or m.group(2) != region or (network is not None and m.group(1) != network):
        raise VerifyError("checkpoint: origin %r is not ccnode/%s/%s" % (origin, network or "<network>", region))
    if not re.fullmatch(r"0|[1-9][0-9]*", size_s):
        raise VerifyError("checkpoint: size %r is not decimal" % size_s)
    root = unb64(root_b64)
    if len(root) != 32:
        raise VerifyError("checkpoint: root hash has %d bytes" % len(root))
    sig_lines = sigs.split("\n")
    if len(sig_lines) != 2 or sig_lines[1] != "":
        raise VerifyError("checkpoint: want exactly one signature line")
    prefix = "\u2014 " + origin + " "
    if not sig_lines[0].startswith(prefix):
        raise VerifyError("checkpoint: the signature is not under the origin's name")
    blob = unb64(sig_lines[0][len(prefix):])
    if len(blob) != 68 or blob[:4] != note_key_hash(origin, pub):
        raise VerifyError("checkpoint: the signature is not by the region's key (key hash)")
    verify(pub, text.encode("utf-8"), blob[4:], "checkpoint of %s" % region)
    return int(size_s), root


# ---------------------------------------------------------------- vectors

def check_vectors(path):
    """Reproduces every vector of credit/testdata/vectors.json; returns the count checked."""
    with open(path, encoding="utf-8") as f:
        v = json.load(f)
    if v.get("format") != "ccnode-signing-vectors/1":
        raise VerifyError("vectors: unknown format %r" % v.get("format"))
    checked = [0]

    def eq(what, got, want):
        if got != want:
            raise VerifyError("vector %s:\n got %s\nwant %s" % (what, got, want))
        checked[0] += 1

    # SPEC 2.1 and 2.2: strings (invalid UTF-8 bytes kept as lone
    # surrogates, one per byte) and times.
    for c in v["strings"]:
        eq("string %s" % c["input_hex"], enc_string(bytes.fromhex(c["input_hex"]).decode("utf-8", "surrogateescape")), c["canonical"])
    for c in v["times"]:
        eq("time %s" % c["input"], canonical_time(c["input"]), c["canonical"])

    keys, pubs = {}, {}
    for name, k in v["keys"].items():
        seed = hashlib.sha256(("ccnode test vector key: " + name).encode()).digest()
        eq("key %s seed" % name, seed.hex(), k["seed_hex"])
        keys[name] = Ed25519PrivateKey.from_private_bytes(seed)
        pubs[name] = keys[name].public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        eq("key %s public" % name, pubs[name].hex(), k["public_hex"])

    # SPEC 6: records and the report.
    rep = v["report"]
    records = []
    for i, r in enumerate(rep["records"]):
        attrs = loads_raw(r["attrs_json"])
        eq("report record %d canonical attrs" % i, enc_value(attrs), r["canonical_attrs"])
        records.append(dict(r, attrs=attrs))
    sections = []
    for r in records:
        if not sections or sections[-1]["category"] != r["category"]:
            sections.append({"category": r["category"], "records": []})
        sections[-1]["records"].append(r)
    report = {"uscc": rep["uscc"], "sections": sections}
    eq("report canonical", enc_report(report).encode().hex(), rep["canonical_hex"])
    eq("report digest", report_digest(report).hex(), rep["digest_hex"])
    # The same report decoded from its canonical text, as a bank reads it.
    eq("report digest from its JSON", report_digest(loads_raw(rep["canonical"])).hex(), rep["digest_hex"])

    # SPEC 3.1: the consent.
    c = v["consent"]
    g = dict(c["input"])
    m = consent_enterprise_message(g)
    eq("consent enterprise message", m.hex(), c["enterprise_message_hex"])
    eq("consent enterprise message text", m.decode(), c["enterprise_message"])
    g["enterprise_sig"] = base64.b64encode(sign(keys["enterprise"], m)).decode()
    eq("consent enterprise signature", g["enterprise_sig"], c["enterprise_sig_base64"])
    m = consent_region_message(g)
    eq("consent region message", m.hex(), c["region_message_hex"])
    g["region_sig"] = base64.b64encode(sign(keys["region_440300"], m)).decode()
    eq("consent region signature", g["region_sig"], c["region_sig_base64"])
    eq("consent canonical", enc_consent(g), c["canonical"])
    eq("consent commitment", consent_commitment(g).hex(), c["commitment_hex"])
    # The enterprise's key is its leaf certificate's, which names the USCC.
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    leaf = x509.load_der_x509_certificate(unb64(g["enterprise_cert"][0]))
    leaf_pub = leaf.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    verify(leaf_pub, consent_enterprise_message(g), unb64(g["enterprise_sig"]), "consent enterprise signature under the leaf certificate")
    eq("leaf certificate serialNumber", leaf.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value, g["uscc"])
    verify(pubs["region_440300"], consent_region_message(g), unb64(g["region_sig"]), "consent countersignature")

    # SPEC 3.2: the query, unsorted categories and +08:00 times included.
    qv = v["query"]
    q = dict(qv["input"])
    m = query_message(q)
    eq("query message", m.hex(), qv["message_hex"])
    q["sig"] = base64.b64encode(sign(keys["bank"], m)).decode()
    eq("query signature", q["sig"], qv["sig_base64"])
    eq("query canonical", enc_query(q), qv["canonical"])
    eq("query digest", query_digest(q).hex(), qv["query_digest_hex"])
    # The canonical query decodes and verifies as posted.
    verify(pubs["bank"], query_message(json.loads(qv["canonical"])), unb64(q["sig"]), "query as posted")

    # SPEC 3.3: the receipt.
    rv = v["receipt"]
    r = dict(rv["input"], query=q)
    r["id"] = receipt_id(r["answerer"], q)
    eq("receipt id", r["id"], rv["id"])
    eq("receipt report_digest", unb64(r["report_digest"]).hex(), rep["digest_hex"])
    m = receipt_message(r)
    eq("receipt message", m.hex(), rv["message_hex"])
    r["sig"] = base64.b64encode(sign(keys["region_440100"], m)).decode()
    eq("receipt signature", r["sig"], rv["sig_base64"])
    eq("receipt leaf", receipt_leaf(r).hex(), rv["leaf_hex"])
    eq("receipt digest", receipt_digest(r).hex(), rv["receipt_digest_hex"])
    # As a bank receives it: the leaf, decoded, verifies and names the query.
    check_receipt(json.loads(rv["leaf"]), q, pubs["region_440100"], "440300", "440100")
    # A receipt changed in any signed field, or under another key, fails.
    for tamper, pub in (({"record_count": r["record_count"] + 1}, pubs["region_440100"]),
                        ({"time": "2026-03-01T10:00:00.98765432Z"}, pubs["region_440100"]),
                        ({}, pubs["region_440300"])):
        try:
            check_receipt(dict(json.loads(rv["leaf"]), **tamper), q, pub, "440300", "440100")
        except VerifyError:
            checked[0] += 1
            continue
        raise VerifyError("vector receipt: a tampered receipt verified")

    # SPEC 3.4: the acknowledgement.
    av = v["ack"]
    a = dict(av["input"], receipt_id=r["id"], receipt_digest=base64.b64encode(receipt_digest(r)).decode())
    m = ack_message(a)
    eq("ack message", m.hex(), av["message_hex"])
    eq("ack signature", base64.b64encode(sign(keys["region_440300"], m)).decode(), av["sig_base64"])

    # SPEC 3.5: the receipt read.
    rrv = v["receipt_read"]
    m = receipt_read_message(rrv["input"])
    eq("receipt read message", m.hex(), rrv["message_hex"])
    eq("receipt read signature", base64.b64encode(sign(keys["bank"], m)).decode(), rrv["sig_base64"])
    eq("receipt read time header", '"' + rrv["headers"]["CCNode-Time"] + '"', canonical_time(rrv["input"]["time"]))

    # SPEC 7.2 and 7.3: the log, the proof and the checkpoint.
    lv = v["log"]
    leaves = [bytes.fromhex(h) for h in lv["leaves_hex"]]
    eq("log leaf is the receipt", leaves[lv["leaf_index"]], receipt_leaf(r))
    eq("leaf hash", hash_leaf(leaves[lv["leaf_index"]]).hex(), lv["leaf_hash_hex"])
    root = merkle_root(leaves)
    eq("root", root.hex(), lv["root_hex"])
    verify_inclusion(lv["leaf_index"], lv["tree_size"], hash_leaf(receipt_leaf(r)), [bytes.fromhex(h) for h in lv["inclusion_proof_hex"]], root)
    size, croot = verify_checkpoint(lv["checkpoint_note"], lv["region"], pubs["region_440100"], lv["network"])
    eq("checkpoint size", size, lv["tree_size"])
    eq("checkpoint root", croot, root)
    origin = "ccnode/%s/%s" % (lv["network"], lv["region"])
    eq("verifier key", verifier_key(origin, pubs["region_440100"]), lv["verifier_key"])
    cv = lv["consistency"]
    from_root = merkle_root(leaves[:cv["from_size"]])
    eq("consistency from root", from_root.hex(), cv["from_root_hex"])
    cproof = [bytes.fromhex(h) for h in cv["proof_hex"]]
    verify_consistency(cv["from_size"], lv["tree_size"], cproof, from_root, root)
    eq("earlier checkpoint", verify_checkpoint(cv["from_checkpoint_note"], lv["region"], pubs["region_440100"], lv["network"]), (cv["from_size"], from_root))
    # A tampered proof, leaf or note must fail.
    for bad in (
        lambda: verify_inclusion(lv["leaf_index"], lv["tree_size"], hash_leaf(receipt_leaf(r) + b" "), [bytes.fromhex(h) for h in lv["inclusion_proof_hex"]], root),
        lambda: verify_checkpoint(lv["checkpoint_note"].replace("\n7\n", "\n8\n"), lv["region"], pubs["region_440100"]),
        lambda: verify_checkpoint(lv["checkpoint_note"], lv["region"], pubs["region_440300"]),
        lambda: verify_consistency(cv["from_size"], lv["tree_size"], cproof, from_root, merkle_root(leaves[:-1] + [b"x"])),
        lambda: verify_consistency(cv["from_size"] + 1, lv["tree_size"], cproof, merkle_root(leaves[:cv["from_size"] + 1]), root),
    ):
        try:
            bad()
        except VerifyError:
            checked[0] += 1
            continue
        raise VerifyError("vector log: a tampered proof or note verified")
    return checked[0]


# ---------------------------------------------------------------- SPEC 7.1

def check_receipt(rc, q, pub, home, region):
    """SPEC 7.1 checks 1-3 of one receipt against the bank's signed query."""
    if rc["answerer"] != region or rc["requester"] != home:
        raise VerifyError("receipt %s names %s->%s, want %s->%s" % (rc["id"], rc["requester"], rc["answerer"], home, region))
    verify(pub, receipt_message(rc), unb64(rc["sig"]), "receipt %s of region %s" % (rc["id"], region))
    if enc_query(rc["query"]) != enc_query(q):
        raise VerifyError("receipt %s names another query" % rc["id"])
    if rc["id"] != receipt_id(region, q):
        raise VerifyError("receipt id %s is not derived from the query" % rc["id"])


def check_region(st, q, region_keys, home):
    """Every check of SPEC 7.1 for one ok region; returns its receipt."""
    region = st["region"]
    if region not in region_keys:
        raise VerifyError("no key for region %s in --region-keys" % region)
    rc = st["receipt"]
    check_receipt(rc, q, key_at(region_keys, region, rc["time"]), home, region)
    rep = st["report"]
    if report_digest(rep) != unb64(rc["report_digest"]):
        raise VerifyError("region %s: report digest differs from its receipt" % region)
    count = sum(len(s["records"] or []) for s in rep["sections"])
    cats = [s["category"] for s in rep["sections"]]
    if count != rc["record_count"] or count != st["record_count"]:
        raise VerifyError("region %s: %d records, receipt says %d" % (region, count, rc["record_count"]))
    if cats != rc["categories"] or not set(cats) <= set(normalize_categories(q["categories"])):
        raise VerifyError("region %s: categories %s, receipt %s, query %s" % (region, cats, rc["categories"], q["categories"]))
    a = st.get("ack")
    if a is None or home not in region_keys:
        raise VerifyError("region %s: no acknowledgement by the home region %s" % (region, home))
    if a["receipt_id"] != rc["id"] or unb64(a["receipt_digest"]) != receipt_digest(rc) or a["requester"] != home:
        raise VerifyError("region %s: the acknowledgement names another receipt" % region)
    verify(key_at(region_keys, home, a["time"]), ack_message(a), unb64(a["sig"]), "acknowledgement of receipt %s" % rc["id"])
    return rc


# ---------------------------------------------------------------- HTTP

class Node:
    def __init__(self, base, ca_file, client_cert=None, client_key=None, timeout=60):
        self.base = base.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=ca_file) if base.startswith("https://") else None
        if self.ctx is not None and client_cert:
            self.ctx.load_cert_chain(client_cert, client_key)
        self.timeout = timeout

    def call(self, method, path, body=None, headers=None):
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=dict(headers or {}))
        if body is not None:
            req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.ctx) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)
                code, msg = err["code"], err["message"]
            except (ValueError, KeyError, TypeError):
                code, msg = "internal", raw.decode("utf-8", "replace")[:200]
            raise Refused(e.code, code, msg)


def load_bank_key(path):
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise VerifyError("%s: not an Ed25519 private key" % path)
    return key


def load_region_keys(path):
    """{region: (current key, [(replaced at, earlier key), ...] oldest first)}
    from {"regions": [{"id", "pub_key", "past_keys": [{"pub_key", "until"}]}]}."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    keys = {}
    for m in doc["regions"]:
        pub = unb64(m["pub_key"])
        if len(pub) != 32:
            raise VerifyError("%s: region %s: pub_key has %d bytes" % (path, m["id"], len(pub)))
        past = []
        for i, k in enumerate(m.get("past_keys") or []):
            old = unb64(k["pub_key"])
            if len(old) != 32:
                raise VerifyError("%s: region %s: past_keys[%d]: pub_key has %d bytes" % (path, m["id"], i, len(old)))
            until = utc_time(k["until"])
            if past and not past[-1][0] < until:
                raise VerifyError("%s: region %s: past_keys[%d]: not replaced after the key before it: want the oldest first" % (path, m["id"], i))
            past.append((until, old))
        keys[m["id"]] = (pub, past)
    return keys


def key_at(region_keys, region, when):
    """The region's key at time `when` (RFC 3339): the first earlier key
    replaced after it, else the current one (RegionMember.KeyAt)."""
    pub, past = region_keys[region]
    t = utc_time(when)
    for until, old in past:
        if t < until:
            return old
    return pub


def build_query(bank, key, consent, uscc=None, categories=None, purpose=None):
    q = {
        "v": 1, "bank": bank, "uscc": (uscc or consent["uscc"]).upper(),
        "categories": normalize_categories(categories or consent["categories"]),
        "purpose": purpose or consent["purpose"], "consent_id": consent["id"], "consent": consent,
        "nonce": "n-" + secrets.token_hex(12), "time": now_time(),
    }
    q["sig"] = base64.b64encode(sign(key, query_message(q))).decode()
    return q


def read_receipt(node, bank, key, rid):
    rr = {"v": 1, "bank": bank, "receipt_id": rid, "time": now_time()}
    sig = sign(key, receipt_read_message(rr))
    headers = {"CCNode-Bank": bank, "CCNode-Time": rr["time"], "CCNode-Signature": base64.b64encode(sig).decode()}
    return json.loads(node.call("GET", "/v1/receipts/" + rid, headers=headers))


def prove(node, bank, key, rc, region_keys, network, wait):
    """SPEC 7.2 for one receipt of the node's own region."""
    leaf = receipt_leaf(rc)
    deadline = time.monotonic() + wait
    while True:
        rp = read_receipt(node, bank, key, rc["id"])
        if unb64(rp["leaf"]) != leaf:
            raise VerifyError("receipt %s: the logged leaf is not the receipt received" % rc["id"])
        root = unb64(rp["root"])
        verify_inclusion(rp["leaf_index"], rp["tree_size"], hash_leaf(leaf), [unb64(p) for p in rp["proof"]], root)
        cp = rp.get("checkpoint")
        if cp is not None:
            size, croot = verify_checkpoint(cp["note"], rc["answerer"], key_at(region_keys, rc["answerer"], cp["anchored_at"]), network)
            if size != rp["tree_size"] or croot != root or cp["size"] != size or unb64(cp["root"]) != croot or cp["region"] != rc["answerer"]:
                raise VerifyError("receipt %s: the checkpoint states another tree than the proof" % rc["id"])
            return rp, cp
        if time.monotonic() >= deadline:
            raise VerifyError("receipt %s: no anchored checkpoint covers it after %ss" % (rc["id"], wait))
        time.sleep(0.5)


def run_query(args):
    key = load_bank_key(args.key)
    region_keys = load_region_keys(args.region_keys)
    with open(args.consent, encoding="utf-8") as f:
        consent = json.load(f)
    # The consent document a bank holds was countersigned by its home
    # region: checked before it travels (SPEC 3.1, 4).
    if consent.get("region") in region_keys:
        # Countersigned when recorded, a time the document does not carry:
        # any of the region's keys will do here; the home node checks it
        # against the key of the recording.
        pub, past = region_keys[consent["region"]]
        msg, sig = consent_region_message(consent), unb64(consent["region_sig"] or "")
        what = "consent %s: countersignature of region %s" % (consent["id"], consent["region"])
        for _, old in past:
            try:
                verify(old, msg, sig, what)
                break
            except VerifyError:
                pass
        else:
            verify(pub, msg, sig, what)
    cats = [c.strip() for c in args.categories.split(",")] if args.categories else None
    q = build_query(args.bank, key, consent, args.uscc, cats, args.purpose)
    node = Node(args.node, args.ca_file, args.client_cert, args.client_key)
    res = json.loads(node.call("POST", "/v1/query", enc_query(q).encode("utf-8")), parse_float=RawNumber, parse_int=RawNumber)
    # Integers of the envelope, receipts and acks are plain ints again.
    fix_ints(res)
    home = res["home_region"]
    if res["query_digest"] != query_digest(q).hex():
        raise VerifyError("query_digest %s is not the query's %s" % (res["query_digest"], query_digest(q).hex()))
    print("%s for bank %s via %s: %d records" % (res["uscc"], res["bank"], home, res["record_count"]))
    own = None
    for st in res["regions"]:
        if st["status"] != "ok":
            print("  region %-8s %-16s %s %s" % (st["region"], st["status"], st.get("reason", ""), st.get("message", "")))
            continue
        rc = check_region(st, q, region_keys, home)
        print("  region %-8s ok  %4d records  receipt %s leaf %s: signature, query, id, report digest and ack verified"
              % (st["region"], st["record_count"], rc["id"], st.get("leaf_index")))
        if st["region"] == home and own is None:
            own = rc
    if own is None:
        raise VerifyError("the home region %s gave no receipt to prove" % home)
    rp, cp = prove(node, args.bank, key, own, region_keys, args.network, args.proof_wait)
    print("inclusion: receipt %s is leaf %d of %s's log of %d (proof of %d hashes), under checkpoint %s signed by region %s"
          % (own["id"], rp["leaf_index"], own["answerer"], rp["tree_size"], len(rp["proof"]), cp["note"].split("\n")[0], own["answerer"]))
    print("verified")


def fix_ints(v):
    """Turns RawNumber back into int where the envelope has integers,
    leaving report attributes (which need their literal text) alone."""
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "attrs":
                continue
            if isinstance(x, RawNumber):
                v[k] = int(x) if re.fullmatch(r"-?[0-9]+", x) else float(x)
            else:
                fix_ints(x)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            if isinstance(x, RawNumber):
                v[i] = int(x) if re.fullmatch(r"-?[0-9]+", x) else float(x)
            else:
                fix_ints(x)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vectors", help="check credit/testdata/vectors.json and exit")
    p.add_argument("--node", help="the home node's bank API, https://HOST:PORT")
    p.add_argument("--ca-file", help="CA certificate(s) the node's TLS certificate chains to")
    p.add_argument("--client-cert", help="client certificate (PEM), when the node asks for one")
    p.add_argument("--client-key", help="client certificate's key (PEM)")
    p.add_argument("--bank", help="the bank's id")
    p.add_argument("--key", help="the bank's Ed25519 key, PKCS#8 PEM")
    p.add_argument("--consent", help="the countersigned consent document (JSON)")
    p.add_argument("--region-keys", help='member regions\' keys: {"regions":[{"id":..,"pub_key":base64}]}')
    p.add_argument("--uscc", help="subject (default: the consent's)")
    p.add_argument("--categories", help="comma-separated (default: the consent's)")
    p.add_argument("--purpose", help="purpose (default: the consent's)")
    p.add_argument("--network", help="the consortium's network id, checked in the checkpoint's origin")
    p.add_argument("--proof-wait", type=float, default=30, help="seconds to wait for an anchored checkpoint (default 30)")
    args = p.parse_args(argv)
    try:
        if args.vectors:
            n = check_vectors(args.vectors)
            print("vectors: %d checks passed (%s)" % (n, args.vectors))
            return 0
        missing = [f for f in ("node", "bank", "key", "consent", "region_keys") if getattr(args, f) is None]
        if missing:
            p.error("missing --" + ", --".join(m.replace("_", "-") for m in missing))
        run_query(args)
        return 0
    except Refused as e:
        print("refused: %s" % e, file=sys.stderr)
        return 1
    except (VerifyError, OSError, ValueError, KeyError, TypeError) as e:
        print("FAILED: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
