package credit_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/prdcredit/ccnode/credit"
)

// The signing test vectors of credit/SPEC.md. The file is generated from
// fixed keys and inputs by the production code (-update), and the test
// recomputes every output from the file's inputs and holds it equal to the
// file: an encoding change that would break a bank's independent client
// fails here first. node/bankclient/python checks the same file with an
// implementation written from the spec alone.

var updateVectors = flag.Bool("update", false, "regenerate testdata/vectors.json from the production code")

const vectorsPath = "testdata/vectors.json"

type vecKey struct {
	Seed   string `json:"seed_hex"`
	Public string `json:"public_hex"`
	// PublicBase64 is the key as a ledger member record (pub_key) holds it.
	PublicBase64 string `json:"public_base64"`
}

type vecAuthority struct {
	ID        string   `json:"id"`
	Region    string   `json:"region"`
	Divisions []string `json:"divisions"`
	Cert      string   `json:"cert_der_base64"`
	// Intermediate is the CA certificate between the authority and the
	// enterprise, second in the consent's chain.
	Intermediate string `json:"intermediate_der_base64"`
}

type vecRecord struct {
	Subject  string `json:"uscc"`
	Source   string `json:"source"`
	SourceID string `json:"source_id"`
	Category string `json:"category"`
	Date     string `json:"date"`
	// AttrsJSON is the attributes as a department wrote them (a string,
	// so that this file's own formatting cannot change them).
	AttrsJSON string `json:"attrs_json"`
	// CanonicalAttrs is what the node stores and reports.
	CanonicalAttrs string `json:"canonical_attrs"`
}

type vecReport struct {
	Subject      string      `json:"uscc"`
	Records      []vecRecord `json:"records"`
	Canonical    string      `json:"canonical"`
	CanonicalHex string      `json:"canonical_hex"`
	Digest       string      `json:"digest_hex"`
}

type vecConsent struct {
	// Input is the document before signing: categories out of report
	// order with a repeat, times with a +08:00 offset.
	Input             json.RawMessage `json:"input"`
	EnterpriseMessage string          `json:"enterprise_message"`
	EnterpriseMsgHex  string          `json:"enterprise_message_hex"`
	EnterpriseSig     string          `json:"enterprise_sig_base64"`
	RegionMessage     string          `json:"region_message"`
	RegionMsgHex      string          `json:"region_message_hex"`
	RegionSig         string          `json:"region_sig_base64"`
	// Canonical is the signed document's canonical encoding, which the
	// commitment hashes.
	Canonical  string `json:"canonical"`
	Commitment string `json:"commitment_hex"`
}

type vecQuery struct {
	// Input is the query as a bank holds it before signing: its consent
	// is the signed document exactly as consent.input plus the two
	// signatures (still unsorted, still +08:00: the node normalises both).
	Input      json.RawMessage `json:"input"`
	Message    string          `json:"message"`
	MessageHex string          `json:"message_hex"`
	Sig        string          `json:"sig_base64"`
	// Canonical is the signed query's canonical encoding, sig included:
	// what a receipt embeds and the query digest hashes.
	Canonical string `json:"canonical"`
	Digest    string `json:"query_digest_hex"`
}

type vecReceipt struct {
	// Input holds the receipt's own fields; its query is query's, signed,
	// and its report_digest and record_count are report's.
	Input      json.RawMessage `json:"input"`
	ID         string          `json:"id"`
	Message    string          `json:"message"`
	MessageHex string          `json:"message_hex"`
	Sig        string          `json:"sig_base64"`
	Leaf       string          `json:"leaf"`
	LeafHex    string          `json:"leaf_hex"`
	Digest     string          `json:"receipt_digest_hex"`
}

type vecAck struct {
	Input      json.RawMessage `json:"input"`
	Message    string          `json:"message"`
	MessageHex string          `json:"message_hex"`
	Sig        string          `json:"sig_base64"`
}

type vecReceiptRead struct {
	Input      json.RawMessage   `json:"input"`
	Message    string            `json:"message"`
	MessageHex string            `json:"message_hex"`
	Sig        string            `json:"sig_base64"`
	Headers    map[string]string `json:"headers"`
}

type vecLog struct {
	// Leaves are the answering region's log, leaf i at index i; the
	// receipt's leaf is at LeafIndex, the others are opaque filler.
	LeavesHex    []string `json:"leaves_hex"`
	LeafIndex    uint64   `json:"leaf_index"`
	TreeSize     uint64   `json:"tree_size"`
	LeafHash     string   `json:"leaf_hash_hex"`
	Root         string   `json:"root_hex"`
	Proof        []string `json:"inclusion_proof_hex"`
	Network      string   `json:"network"`
	Region       string   `json:"region"`
	Note         string   `json:"checkpoint_note"`
	VerifierKey  string   `json:"verifier_key"`
	NoteKeyHash  string   `json:"note_key_hash_hex"`
	NoteSignedAt string   `json:"note_signed_text"`
	// Consistency proves the log at an earlier checkpoint a prefix of
	// the log at tree_size (RFC 9162 section 2.1.4).
	Consistency vecConsistency `json:"consistency"`
}

type vecConsistency struct {
	FromSize uint64   `json:"from_size"`
	FromRoot string   `json:"from_root_hex"`
	FromNote string   `json:"from_checkpoint_note"`
	Proof    []string `json:"proof_hex"`
}

// vecString is one string and its canonical encoding (SPEC 2.1).
type vecString struct {
	// InputHex is the string's bytes, which may be invalid UTF-8.
	InputHex  string `json:"input_hex"`
	Canonical string `json:"canonical"`
}

// vecTimeCase is one RFC 3339 time and its canonical encoding (SPEC 2.2).
type vecTimeCase struct {
	Input     string `json:"input"`
	Canonical string `json:"canonical"`
}

type vectorsFile struct {
	Format      string            `json:"format"`
	About       []string          `json:"about"`
	Strings     []vecString       `json:"strings"`
	Times       []vecTimeCase     `json:"times"`
	Keys        map[string]vecKey `json:"keys"`
	Authority   vecAuthority      `json:"authority"`
	Report      vecReport         `json:"report"`
	Consent     vecConsent        `json:"consent"`
	Query       vecQuery          `json:"query"`
	Receipt     vecReceipt        `json:"receipt"`
	Ack         vecAck            `json:"ack"`
	ReceiptRead vecReceiptRead    `json:"receipt_read"`
	Log         vecLog            `json:"log"`
}

// vectorKeyNames are the file's keys; each seed is SHA-256 of
// "ccnode test vector key: " and the name, so anyone can re-derive them.
var vectorKeyNames = []string{"authority", "intermediate", "enterprise", "bank", "region_440300", "region_440100"}

func vectorSeed(name string) []byte {
	s := sha256.Sum256([]byte("ccnode test vector key: " + name))
	return s[:]
}

const (
	vecUSCC    = "91440300708461136T"
	vecNetwork = "prd-credit"
)

var vecConsentInput = `{"v":2,"id":"consent-vector-0001","uscc":"91440300708461136T","grantee":"bank-a",
"categories":["tax","penalty","registration","tax"],"purpose":"loan_application",
"valid_from":"2026-03-01T08:00:00+08:00","valid_until":"2027-03-01T08:00:00+08:00","region":"440300",
"signed_at":"2026-03-01T09:30:00.250+08:00","enterprise_cert":null}`

// vecRecords are in report order (category, then date), as a node
// returns them; their attributes are written as a department might.
var vecRecords = []vecRecord{
	{Subject: vecUSCC, Source: "sz-amr", SourceID: "REG-0001", Category: "registration", Date: "2015-06-01",
		AttrsJSON: `{"name": "深圳市示例科技有限公司", "capital_cny": 1000000, "type": "有限责任公司"}`},
	{Subject: vecUSCC, Source: "sz-amr", SourceID: `PEN/2023 "A"\1`, Category: "penalty", Date: "2023-03-10",
		AttrsJSON: `{"status": "已履行", "amount_cny": 3753.50, "detail": {"z": 1e3, "b": "\u0041\/ <b>&amp;</b>"}, "note": "line1\nline2\t\u0001 \u2028 caf\u00e9 😀", "empty": {}, "list": [3, "x", null, true, 1.0E-2]}`},
	{Subject: vecUSCC, Source: "sz-tax", SourceID: "TAX-2024-Q1", Category: "tax", Date: "2024-04-15",
		AttrsJSON: `{"rating":"A","paid_cny":-0.0,"year":2024}`},
}

func vecTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }
func b64(b []byte) string   { return base64.StdEncoding.EncodeToString(b) }

func vectorKeys() map[string]ed25519.PrivateKey {
	keys := map[string]ed25519.PrivateKey{}
	for _, n := range vectorKeyNames {
		keys[n] = ed25519.NewKeyFromSeed(vectorSeed(n))
	}
	return keys
}

// vectorCerts makes the authority's certificate, an intermediate CA and
// the enterprise's certificate, with fixed serials and times: Ed25519
// certificate signatures are deterministic, so the same bytes every run.
func vectorCerts(t *testing.T, keys map[string]ed25519.PrivateKey) (root, inter, leaf []byte) {
	t.Helper()
	nb, na := vecTime("2026-01-01T00:00:00Z"), vecTime("2031-01-01T00:00:00Z")
	mk := func(tmpl, parent *x509.Certificate, pub ed25519.PublicKey, key ed25519.PrivateKey) []byte {
		der, err := x509.CreateCertificate(nil, tmpl, parent, pub, key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Vector Test Authority", Organization: []string{"Vector Test Authority"}},
		NotBefore: nb, NotAfter: na, IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	root = mk(rootTmpl, rootTmpl, keys["authority"].Public().(ed25519.PublicKey), keys["authority"])
	rootCert, _ := x509.ParseCertificate(root)
	interTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Vector Test Issuing CA"},
		NotBefore: nb, NotAfter: na, IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	inter = mk(interTmpl, rootCert, keys["intermediate"].Public().(ed25519.PublicKey), keys["authority"])
	interCert, _ := x509.ParseCertificate(inter)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "深圳市示例科技有限公司", SerialNumber: vecUSCC},
		NotBefore: nb, NotAfter: vecTime("2028-01-01T00:00:00Z"), KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leaf = mk(leafTmpl, interCert, keys["enterprise"].Public().(ed25519.PublicKey), keys["intermediate"])
	return root, inter, leaf
}

// mth is RFC 6962's Merkle tree hash and path, written out here so that
// the proof in the file does not come from the code it checks (the test
// verifies it with transparency-dev/merkle, the library the node uses).
func mth(leaves [][]byte) []byte {
	if len(leaves) == 1 {
		return rfc6962.DefaultHasher.HashLeaf(leaves[0])
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return rfc6962.DefaultHasher.HashChildren(mth(leaves[:k]), mth(leaves[k:]))
}

// consistencyPath is RFC 6962's PROOF(m, D[n]) (section 2.1.2).
func consistencyPath(m int, leaves [][]byte, whole bool) [][]byte {
	n := len(leaves)
	if m == n {
		if whole {
			return nil
		}
		return [][]byte{mth(leaves)}
	}
	k := 1
	for k*2 < n {
		k *= 2
	}
	if m <= k {
		return append(consistencyPath(m, leaves[:k], whole), mth(leaves[k:]))
	}
	return append(consistencyPath(m-k, leaves[k:], false), mth(leaves[:k]))
}

func inclusionPath(m int, leaves [][]byte) [][]byte {
	if len(leaves) == 1 {
		return nil
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	if m < k {
		return append(inclusionPath(m, leaves[:k]), mth(leaves[k:]))
	}
	return append(inclusionPath(m-k, leaves[k:]), mth(leaves[:k]))
}

// vecStringInputs cover every escaping rule of SPEC 2.1: each control
// character, the quote and backslash, what is not escaped (slash, HTML
// characters, DEL, non-ASCII, U+FFFD itself) and invalid UTF-8.
func vecStringInputs() []string {
	var in []string
	for c := 0; c < 0x20; c++ {
		in = append(in, "a"+string(rune(c))+"b")
	}
	return append(in, `"`, `\`, "/", "<b>&amp;</b>", "\x7f", "café", "深圳市", "\u2028\u2029", "\ufffd", "😀",
		"\xff", "x\xe2\x80", "\xed\xa0\x80", "\xc0\xaf")
}

var vecTimeInputs = []string{
	"2026-03-01T10:00:00Z", "2026-03-01T10:00:00.000Z", "2026-03-01T18:00:00.120+08:00",
	"2026-03-01T00:30:00.000000001-05:30", "2026-12-31T23:59:59.999999999Z", "2027-01-01T07:59:59.5+08:00",
	"2026-03-01T10:00:00.1234567891Z",
}

// canonicalTime is the production encoding of t, read out of a signed
// message (the credit package exports no time encoder of its own).
func canonicalTime(t *testing.T, in string) string {
	t.Helper()
	var tm time.Time
	if err := json.Unmarshal([]byte(`"`+in+`"`), &tm); err != nil {
		t.Fatalf("time %s: %v", in, err)
	}
	m, err := (&credit.ReceiptRead{Version: 1, Bank: "bank-a", ReceiptID: "receipt-1", Time: tm}).SignedMessage()
	if err != nil {
		t.Fatal(err)
	}
	_, after, _ := bytes.Cut(m, []byte(`"time":`))
	return string(bytes.TrimSuffix(after, []byte("}")))
}

// generateVectors builds the whole file from the fixed keys and inputs.
func generateVectors(t *testing.T) vectorsFile {
	t.Helper()
	keys := vectorKeys()
	v := vectorsFile{
		Format: "ccnode-signing-vectors/1",
		About: []string{
			"Test vectors of credit/SPEC.md, generated by the production code (go test ./credit -run TestSigningVectors -update) and checked by it and by node/bankclient/python.",
			"Each key's seed is SHA-256 of the UTF-8 text 'ccnode test vector key: ' followed by the key's name; the Ed25519 private key is that 32-byte seed (RFC 8032).",
			"*_hex fields are lower-case hex, *_base64 standard base64 with padding; message fields are the signed bytes as text (all ASCII here), message_hex the same bytes.",
		},
		Keys: map[string]vecKey{},
	}
	for _, in := range vecStringInputs() {
		v.Strings = append(v.Strings, vecString{InputHex: hexOf([]byte(in)), Canonical: string(credit.AppendJSONString(nil, in))})
	}
	for _, in := range vecTimeInputs {
		v.Times = append(v.Times, vecTimeCase{Input: in, Canonical: canonicalTime(t, in)})
	}
	for _, n := range vectorKeyNames {
		pub := keys[n].Public().(ed25519.PublicKey)
		v.Keys[n] = vecKey{Seed: hexOf(vectorSeed(n)), Public: hexOf(pub), PublicBase64: b64(pub)}
	}
	root, inter, leaf := vectorCerts(t, keys)
	v.Authority = vecAuthority{ID: credit.AuthorityID(root), Region: "440300", Divisions: []string{"4403"}, Cert: b64(root), Intermediate: b64(inter)}

	// The report a region returns: attributes canonicalised as import does.
	recs := make([]credit.Record, len(vecRecords))
	for i, r := range vecRecords {
		recs[i] = credit.Record{Subject: credit.USCC(r.Subject), Source: r.Source, SourceID: r.SourceID,
			Category: credit.Category(r.Category), Date: credit.Date(r.Date), Attrs: json.RawMessage(r.AttrsJSON)}
		if err := recs[i].Normalize(time.Time{}, 0); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		r.CanonicalAttrs = string(recs[i].Attrs)
		v.Report.Records = append(v.Report.Records, r)
	}
	rep := credit.NewReport(vecUSCC, recs)
	canon := rep.AppendCanonical(nil)
	rd := rep.Digest()
	v.Report.Subject, v.Report.Canonical, v.Report.CanonicalHex, v.Report.Digest = vecUSCC, string(canon), hexOf(canon), hexOf(rd[:])

	// The consent: the enterprise signs, its home region countersigns.
	var in map[string]any
	if err := json.Unmarshal([]byte(vecConsentInput), &in); err != nil {
		t.Fatal(err)
	}
	in["enterprise_cert"] = []string{b64(leaf), b64(inter)}
	v.Consent.Input = mustJSON(t, in)
	g := consentFromInput(t, v.Consent.Input)
	if err := g.SignEnterprise(keys["enterprise"], g.EnterpriseCert, g.SignedAt); err != nil {
		t.Fatal(err)
	}
	if err := g.Countersign(keys["region_440300"]); err != nil {
		t.Fatal(err)
	}
	v.Consent.EnterpriseSig, v.Consent.RegionSig = b64(g.EnterpriseSig), b64(g.RegionSig)
	em := consentMessage(t, g, "ccnode/consent-enterprise/v1", true)
	rm := consentMessage(t, g, "ccnode/consent-region/v1", false)
	v.Consent.EnterpriseMessage, v.Consent.EnterpriseMsgHex = string(em), hexOf(em)
	v.Consent.RegionMessage, v.Consent.RegionMsgHex = string(rm), hexOf(rm)
	gc := g
	gc.Categories = credit.NormalizeCategories(gc.Categories)
	gc.ValidFrom, gc.ValidUntil, gc.SignedAt = gc.ValidFrom.UTC(), gc.ValidUntil.UTC(), gc.SignedAt.UTC()
	v.Consent.Canonical = string(mustJSON(t, gc))
	cm, err := g.Commitment()
	if err != nil {
		t.Fatal(err)
	}
	v.Consent.Commitment = hexOf(cm[:])

	// The query: categories out of order with a repeat, a +08:00 time
	// with trailing zeros in its fraction, and the consent as signed.
	signedConsent := map[string]any{}
	if err := json.Unmarshal(v.Consent.Input, &signedConsent); err != nil {
		t.Fatal(err)
	}
	signedConsent["enterprise_sig"], signedConsent["region_sig"] = v.Consent.EnterpriseSig, v.Consent.RegionSig
	v.Query.Input = mustJSON(t, map[string]any{
		"v": 1, "bank": "bank-a", "uscc": vecUSCC, "categories": []string{"tax", "penalty", "tax", "registration"},
		"purpose": "loan_application", "consent_id": "consent-vector-0001", "consent": signedConsent,
		"nonce": "n-0123456789abcdef01234567", "time": "2026-03-01T18:00:00.120+08:00", "sig": nil,
	})
	q := queryFromInput(t, v.Query.Input)
	if err := q.Sign(keys["bank"]); err != nil {
		t.Fatal(err)
	}
	qm, err := q.SignedMessage()
	if err != nil {
		t.Fatal(err)
	}
	qc, qd, err := q.CanonicalAndDigest()
	if err != nil {
		t.Fatal(err)
	}
	v.Query.Message, v.Query.MessageHex, v.Query.Sig = string(qm), hexOf(qm), b64(q.Sig)
	v.Query.Canonical, v.Query.Digest = string(qc), hexOf(qd[:])

	// Guangzhou (440100) answers Shenzhen's (440300) request with the report.
	v.Receipt.Input = mustJSON(t, map[string]any{
		"v": 1, "requester": "440300", "answerer": "440100", "categories": rep.Categories(),
		"report_digest": b64(rd[:]), "record_count": rep.Count(), "time": "2026-03-01T10:00:00.987654321Z",
	})
	r := receiptFromInput(t, v.Receipt.Input, &q)
	if err := r.Sign(keys["region_440100"]); err != nil {
		t.Fatal(err)
	}
	fillReceipt(t, &v.Receipt, &r)

	v.Ack.Input = mustJSON(t, map[string]any{"v": 1, "requester": "440300", "time": "2026-03-01T10:00:01Z"})
	a := ackFor(t, v.Ack.Input, &r, keys["region_440300"])
	am, _ := a.SignedMessage()
	v.Ack.Message, v.Ack.MessageHex, v.Ack.Sig = string(am), hexOf(am), b64(a.Sig)

	v.ReceiptRead.Input = mustJSON(t, map[string]any{"v": 1, "bank": "bank-a", "receipt_id": r.ID, "time": "2026-03-01T18:05:00+08:00"})
	rr := readFromInput(t, v.ReceiptRead.Input)
	if err := rr.Sign(keys["bank"]); err != nil {
		t.Fatal(err)
	}
	fillRead(t, &v.ReceiptRead, &rr)

	// Guangzhou's log of seven leaves, the receipt at index 5, and its
	// signed checkpoint.
	lb, _ := r.LeafBytes()
	var leaves [][]byte
	for i := 0; i < 7; i++ {
		if i == 5 {
			leaves = append(leaves, lb)
		} else {
			leaves = append(leaves, []byte("opaque filler leaf "+string(rune('0'+i))))
		}
	}
	v.Log = vecLog{LeafIndex: 5, TreeSize: 7, Network: vecNetwork, Region: "440100"}
	for _, l := range leaves {
		v.Log.LeavesHex = append(v.Log.LeavesHex, hexOf(l))
	}
	fillLog(t, &v.Log, leaves, keys["region_440100"])
	return v
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func consentFromInput(t *testing.T, in []byte) credit.ConsentGrant {
	t.Helper()
	var g credit.ConsentGrant
	if err := json.Unmarshal(in, &g); err != nil {
		t.Fatalf("consent input: %v", err)
	}
	return g
}

func queryFromInput(t *testing.T, in []byte) credit.Query {
	t.Helper()
	var q credit.Query
	if err := json.Unmarshal(in, &q); err != nil {
		t.Fatalf("query input: %v", err)
	}
	if err := q.Validate(); err != nil {
		t.Fatalf("query input: %v", err)
	}
	return q
}

func receiptFromInput(t *testing.T, in []byte, q *credit.Query) credit.Receipt {
	t.Helper()
	var r credit.Receipt
	if err := json.Unmarshal(in, &r); err != nil {
		t.Fatalf("receipt input: %v", err)
	}
	r.Query = *q
	id, err := credit.ReceiptID(r.Answerer, q)
	if err != nil {
		t.Fatal(err)
	}
	r.ID = id
	return r
}

func ackFor(t *testing.T, in []byte, r *credit.Receipt, key ed25519.PrivateKey) credit.Ack {
	t.Helper()
	var a credit.Ack
	if err := json.Unmarshal(in, &a); err != nil {
		t.Fatalf("ack input: %v", err)
	}
	out, err := credit.NewAck(r, a.Requester, a.Time, key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readFromInput(t *testing.T, in []byte) credit.ReceiptRead {
	t.Helper()
	var rr credit.ReceiptRead
	if err := json.Unmarshal(in, &rr); err != nil {
		t.Fatalf("receipt read input: %v", err)
	}
	return rr
}

// consentMessage is what the enterprise (enterprise: both signatures
// null) or the region (the enterprise's set, its own null) signed: the
// credit package does not export it, so it is rebuilt here from the
// canonical encoding the commitment hashes, and the test holds it to the
// production signature with ed25519.Verify.
func consentMessage(t *testing.T, g credit.ConsentGrant, tag string, enterprise bool) []byte {
	t.Helper()
	g.RegionSig = nil
	if enterprise {
		g.EnterpriseSig = nil
	}
	g.Categories = credit.NormalizeCategories(g.Categories)
	g.ValidFrom, g.ValidUntil, g.SignedAt = g.ValidFrom.UTC(), g.ValidUntil.UTC(), g.SignedAt.UTC()
	return append([]byte(tag+"\n"), mustJSON(t, g)...)
}

func fillReceipt(t *testing.T, vr *vecReceipt, r *credit.Receipt) {
	t.Helper()
	m, err := r.SignedMessage()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := r.LeafBytes()
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.Digest()
	if err != nil {
		t.Fatal(err)
	}
	vr.ID, vr.Message, vr.MessageHex, vr.Sig = r.ID, string(m), hexOf(m), b64(r.Sig)
	vr.Leaf, vr.LeafHex, vr.Digest = string(leaf), hexOf(leaf), hexOf(d[:])
}

func fillRead(t *testing.T, vr *vecReceiptRead, rr *credit.ReceiptRead) {
	t.Helper()
	m, err := rr.SignedMessage()
	if err != nil {
		t.Fatal(err)
	}
	vr.Message, vr.MessageHex, vr.Sig = string(m), hexOf(m), b64(rr.Sig)
	vr.Headers = map[string]string{
		"CCNode-Bank": string(rr.Bank), "CCNode-Time": rr.Time.UTC().Format(time.RFC3339Nano), "CCNode-Signature": b64(rr.Sig),
	}
}

func fillLog(t *testing.T, vl *vecLog, leaves [][]byte, key ed25519.PrivateKey) {
	t.Helper()
	root := mth(leaves)
	vl.LeafHash = hexOf(rfc6962.DefaultHasher.HashLeaf(leaves[vl.LeafIndex]))
	vl.Root = hexOf(root)
	vl.Proof = nil
	for _, p := range inclusionPath(int(vl.LeafIndex), leaves) {
		vl.Proof = append(vl.Proof, hexOf(p))
	}
	cp := credit.Checkpoint{Region: credit.RegionID(vl.Region), Size: vl.TreeSize, Root: root}
	if err := cp.Sign(vl.Network, key); err != nil {
		t.Fatal(err)
	}
	vl.Note = cp.Note
	origin, _ := credit.CheckpointOrigin(vl.Network, cp.Region)
	vk, err := credit.CheckpointVerifierKey(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	vl.VerifierKey = vk
	kh := sha256.Sum256(append([]byte(origin+"\n\x01"), key.Public().(ed25519.PublicKey)...))
	vl.NoteKeyHash = hexOf(kh[:4])
	text, _, _ := bytes.Cut([]byte(cp.Note), []byte("\n\n"))
	vl.NoteSignedAt = string(text) + "\n"

	c := &vl.Consistency
	c.FromSize = 4
	from := mth(leaves[:c.FromSize])
	c.FromRoot = hexOf(from)
	c.Proof = nil
	for _, p := range consistencyPath(int(c.FromSize), leaves, true) {
		c.Proof = append(c.Proof, hexOf(p))
	}
	fcp := credit.Checkpoint{Region: cp.Region, Size: c.FromSize, Root: from}
	if err := fcp.Sign(vl.Network, key); err != nil {
		t.Fatal(err)
	}
	c.FromNote = fcp.Note
}

// posted is the query input with sig, as a bank would post it.
func posted(t *testing.T, in []byte, sig []byte) *credit.Query {
	t.Helper()
	q := queryFromInput(t, in)
	q.Sig = sig
	return &q
}

func readVectors(t *testing.T) (vectorsFile, []byte) {
	t.Helper()
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (regenerate with go test ./credit -run TestSigningVectors -update)", err)
	}
	var v vectorsFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", vectorsPath, err)
	}
	return v, b
}

func encodeVectors(t *testing.T, v vectorsFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSigningVectors regenerates the file with -update; otherwise it
// recomputes every output from the file's inputs and keys with the
// production code, verifies every signature, and requires the file to be
// exactly what the generator writes.
func TestSigningVectors(t *testing.T) {
	if *updateVectors {
		b := encodeVectors(t, generateVectors(t))
		if err := os.MkdirAll(filepath.Dir(vectorsPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", vectorsPath, len(b))
	}
	v, raw := readVectors(t)
	if got := encodeVectors(t, generateVectors(t)); !bytes.Equal(got, raw) {
		t.Errorf("%s is not what the production code generates: the encoding changed, or the file was edited; if the change is intended, update credit/SPEC.md, run go test ./credit -run TestSigningVectors -update and check node/bankclient/python --vectors", vectorsPath)
	}
	keys := map[string]ed25519.PrivateKey{}
	for name, k := range v.Keys {
		seed, _ := hex.DecodeString(k.Seed)
		if !bytes.Equal(seed, vectorSeed(name)) || len(seed) != ed25519.SeedSize {
			t.Fatalf("key %s: seed is not SHA-256(%q)", name, "ccnode test vector key: "+name)
		}
		keys[name] = ed25519.NewKeyFromSeed(seed)
		if hexOf(keys[name].Public().(ed25519.PublicKey)) != k.Public {
			t.Errorf("key %s: public key differs from the seed's", name)
		}
	}
	pub := func(name string) ed25519.PublicKey { return keys[name].Public().(ed25519.PublicKey) }
	eq := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s", what, got, want)
		}
	}
	unb64 := func(s string) []byte {
		t.Helper()
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// verifies: the file's message, signature and key agree.
	verifies := func(what, msgHex, msgText, sig string, key ed25519.PublicKey) {
		t.Helper()
		m, _ := hex.DecodeString(msgHex)
		if string(m) != msgText {
			t.Errorf("%s: message and message_hex differ", what)
		}
		if !ed25519.Verify(key, m, unb64(sig)) {
			t.Errorf("%s: the signature does not verify over the message", what)
		}
	}

	t.Run("strings", func(t *testing.T) {
		for _, c := range v.Strings {
			in, _ := hex.DecodeString(c.InputHex)
			eq("string "+c.InputHex, string(credit.AppendJSONString(nil, string(in))), c.Canonical)
			if utf8.Valid(in) {
				// encoding/json with HTML escaping off writes the same.
				eq("string "+c.InputHex+" by encoding/json", string(mustJSON(t, string(in))), c.Canonical)
			}
		}
	})
	t.Run("times", func(t *testing.T) {
		for _, c := range v.Times {
			eq("time "+c.Input, canonicalTime(t, c.Input), c.Canonical)
		}
	})

	t.Run("report", func(t *testing.T) {
		recs := make([]credit.Record, len(v.Report.Records))
		for i, r := range v.Report.Records {
			recs[i] = credit.Record{Subject: credit.USCC(r.Subject), Source: r.Source, SourceID: r.SourceID,
				Category: credit.Category(r.Category), Date: credit.Date(r.Date), Attrs: json.RawMessage(r.AttrsJSON)}
			if err := recs[i].Normalize(time.Time{}, 0); err != nil {
				t.Fatal(err)
			}
			eq("canonical attrs", string(recs[i].Attrs), r.CanonicalAttrs)
		}
		rep := credit.NewReport(credit.USCC(v.Report.Subject), recs)
		eq("report canonical", hexOf(rep.AppendCanonical(nil)), v.Report.CanonicalHex)
		d := rep.Digest()
		eq("report digest", hexOf(d[:]), v.Report.Digest)
		// The streaming digest the answering node computes agrees.
		rd := credit.NewReportDigest(credit.USCC(v.Report.Subject))
		rd.Add(recs)
		s := rd.Sum()
		eq("streamed report digest", hexOf(s[:]), v.Report.Digest)
	})

	var g credit.ConsentGrant
	t.Run("consent", func(t *testing.T) {
		g = consentFromInput(t, v.Consent.Input)
		if err := g.SignEnterprise(keys["enterprise"], g.EnterpriseCert, g.SignedAt); err != nil {
			t.Fatal(err)
		}
		if err := g.Countersign(keys["region_440300"]); err != nil {
			t.Fatal(err)
		}
		eq("enterprise signature", b64(g.EnterpriseSig), v.Consent.EnterpriseSig)
		eq("region signature", b64(g.RegionSig), v.Consent.RegionSig)
		verifies("enterprise message", v.Consent.EnterpriseMsgHex, v.Consent.EnterpriseMessage, v.Consent.EnterpriseSig, pub("enterprise"))
		verifies("region message", v.Consent.RegionMsgHex, v.Consent.RegionMessage, v.Consent.RegionSig, pub("region_440300"))
		c, err := g.Commitment()
		if err != nil {
			t.Fatal(err)
		}
		eq("commitment", hexOf(c[:]), v.Consent.Commitment)
		sum := sha256.Sum256([]byte("ccnode/consent/v1\n" + v.Consent.Canonical))
		eq("commitment over the canonical document", hexOf(sum[:]), v.Consent.Commitment)
		if err := g.VerifyEnterprise(); err != nil {
			t.Error(err)
		}
		if err := g.VerifyRegion(pub("region_440300")); err != nil {
			t.Error(err)
		}
		// The chain ends below the registered authority and names the USCC.
		auth := credit.IdentityAuthority{ID: v.Authority.ID, Cert: unb64(v.Authority.Cert), Region: credit.RegionID(v.Authority.Region),
			Divisions: v.Authority.Divisions, Status: credit.StatusActive}
		if err := auth.Validate(); err != nil {
			t.Fatal(err)
		}
		ts, err := credit.NewTrustSet([]credit.IdentityAuthority{auth}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ck := credit.VerifyEnterpriseChain(&g, ts); ck.Refusal != nil {
			t.Errorf("the vector's chain does not certify its enterprise: %v", ck.Refusal)
		}
		if !bytes.Equal(g.EnterpriseCert[1], unb64(v.Authority.Intermediate)) {
			t.Error("the chain's second certificate is not the intermediate")
		}
	})

	var q credit.Query
	t.Run("query", func(t *testing.T) {
		q = queryFromInput(t, v.Query.Input)
		if q.Consent == nil || q.Consent.Validate() != nil {
			t.Fatal("the query's consent is not a valid document")
		}
		if err := q.Consent.VerifyRegion(pub("region_440300")); err != nil {
			t.Errorf("the consent inside the query, unsorted and in +08:00: %v", err)
		}
		if err := q.Sign(keys["bank"]); err != nil {
			t.Fatal(err)
		}
		eq("query signature", b64(q.Sig), v.Query.Sig)
		m, err := q.SignedMessage()
		if err != nil {
			t.Fatal(err)
		}
		eq("query message", hexOf(m), v.Query.MessageHex)
		verifies("query message", v.Query.MessageHex, v.Query.Message, v.Query.Sig, pub("bank"))
		if err := q.Verify(pub("bank")); err != nil {
			t.Error(err)
		}
		qc, qd, err := q.CanonicalAndDigest()
		if err != nil {
			t.Fatal(err)
		}
		eq("signed query canonical", string(qc), v.Query.Canonical)
		eq("query digest", hexOf(qd[:]), v.Query.Digest)
		sum := sha256.Sum256([]byte("ccnode/query-digest/v1\n" + v.Query.Canonical))
		eq("query digest over the canonical query", hexOf(sum[:]), v.Query.Digest)
		// The rule banks missed (issue 18): a signature over the lists as
		// written, unsorted and repeated, does not verify.
		naive := bytes.Replace(m, []byte(`"categories":["registration","penalty","tax"],"purpose"`),
			[]byte(`"categories":["tax","penalty","tax","registration"],"purpose"`), 1)
		if bytes.Equal(naive, m) {
			t.Fatal("the vector's query lost its unsorted categories")
		}
		if err := posted(t, v.Query.Input, ed25519.Sign(keys["bank"], naive)).Verify(pub("bank")); err == nil {
			t.Error("a signature over the categories as written verified")
		}
		// The node decodes what a bank posts and verifies it: the
		// canonical query, as posted, verifies too.
		var sent credit.Query
		if err := json.Unmarshal([]byte(v.Query.Canonical), &sent); err != nil {
			t.Fatal(err)
		}
		if err := sent.Verify(pub("bank")); err != nil {
			t.Errorf("the canonical signed query as posted: %v", err)
		}
	})

	var r credit.Receipt
	t.Run("receipt", func(t *testing.T) {
		r = receiptFromInput(t, v.Receipt.Input, &q)
		eq("receipt id", r.ID, v.Receipt.ID)
		eq("receipt report_digest", hexOf(r.ReportDigest), v.Report.Digest)
		if err := r.Sign(keys["region_440100"]); err != nil {
			t.Fatal(err)
		}
		var got vecReceipt
		fillReceipt(t, &got, &r)
		eq("receipt signature", got.Sig, v.Receipt.Sig)
		eq("receipt message", got.MessageHex, v.Receipt.MessageHex)
		eq("receipt leaf", got.LeafHex, v.Receipt.LeafHex)
		eq("receipt digest", got.Digest, v.Receipt.Digest)
		verifies("receipt message", v.Receipt.MessageHex, v.Receipt.Message, v.Receipt.Sig, pub("region_440100"))
		sum := sha256.Sum256([]byte("ccnode/receipt-digest/v1\n" + v.Receipt.Leaf))
		eq("receipt digest over the leaf", hexOf(sum[:]), v.Receipt.Digest)
		// The leaf decodes to the receipt and verifies, as a bank reads it
		// from a consolidated report.
		dec, ok := credit.DecodeCanonicalReceipt([]byte(v.Receipt.Leaf))
		if !ok {
			t.Fatal("the leaf is not in canonical layout")
		}
		if err := dec.Verify(pub("region_440100")); err != nil {
			t.Error(err)
		}
		names, _, err := dec.VerifyNamesQuery(pub("region_440100"), []byte(v.Query.Canonical), func(pub, msg, sig []byte) bool { return ed25519.Verify(pub, msg, sig) })
		if err != nil || !names {
			t.Errorf("the receipt does not name the query: %v %v", names, err)
		}
	})

	t.Run("ack", func(t *testing.T) {
		a := ackFor(t, v.Ack.Input, &r, keys["region_440300"])
		m, _ := a.SignedMessage()
		eq("ack message", hexOf(m), v.Ack.MessageHex)
		eq("ack signature", b64(a.Sig), v.Ack.Sig)
		verifies("ack message", v.Ack.MessageHex, v.Ack.Message, v.Ack.Sig, pub("region_440300"))
		if err := a.Verify(&r, pub("region_440300")); err != nil {
			t.Error(err)
		}
	})

	t.Run("receipt read", func(t *testing.T) {
		rr := readFromInput(t, v.ReceiptRead.Input)
		eq("read names the receipt", rr.ReceiptID, v.Receipt.ID)
		if err := rr.Sign(keys["bank"]); err != nil {
			t.Fatal(err)
		}
		var got vecReceiptRead
		fillRead(t, &got, &rr)
		eq("read message", got.MessageHex, v.ReceiptRead.MessageHex)
		eq("read signature", got.Sig, v.ReceiptRead.Sig)
		for h, want := range v.ReceiptRead.Headers {
			eq("header "+h, got.Headers[h], want)
		}
		verifies("read message", v.ReceiptRead.MessageHex, v.ReceiptRead.Message, v.ReceiptRead.Sig, pub("bank"))
		if err := rr.Verify(pub("bank")); err != nil {
			t.Error(err)
		}
	})

	t.Run("log", func(t *testing.T) {
		var leaves [][]byte
		for _, h := range v.Log.LeavesHex {
			b, _ := hex.DecodeString(h)
			leaves = append(leaves, b)
		}
		if uint64(len(leaves)) != v.Log.TreeSize || hexOf(leaves[v.Log.LeafIndex]) != v.Receipt.LeafHex {
			t.Fatal("the log's leaves do not hold the receipt at leaf_index")
		}
		var got vecLog = v.Log
		fillLog(t, &got, leaves, keys["region_440100"])
		eq("root", got.Root, v.Log.Root)
		eq("checkpoint note", got.Note, v.Log.Note)
		eq("verifier key", got.VerifierKey, v.Log.VerifierKey)
		root, _ := hex.DecodeString(v.Log.Root)
		lh, _ := hex.DecodeString(v.Log.LeafHash)
		var p [][]byte
		for _, h := range v.Log.Proof {
			b, _ := hex.DecodeString(h)
			p = append(p, b)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, v.Log.LeafIndex, v.Log.TreeSize, lh, p, root); err != nil {
			t.Errorf("inclusion proof: %v", err)
		}
		cp := credit.Checkpoint{Region: credit.RegionID(v.Log.Region), Size: v.Log.TreeSize, Root: root, Note: v.Log.Note}
		if err := cp.Verify(pub("region_440100")); err != nil {
			t.Error(err)
		}
		// The note's signature is Ed25519 over its text, after the
		// 4-byte key hash: what a verifier without ccnode checks.
		_, sigLine, _ := bytes.Cut([]byte(v.Log.Note), []byte("\n\n"))
		fields := bytes.Fields(sigLine)
		sig := unb64(string(fields[len(fields)-1]))
		eq("note key hash", hexOf(sig[:4]), v.Log.NoteKeyHash)
		if !ed25519.Verify(pub("region_440100"), []byte(v.Log.NoteSignedAt), sig[4:]) {
			t.Error("the note's signature does not verify over its text")
		}
		c := v.Log.Consistency
		eq("consistency proof", strings.Join(got.Consistency.Proof, ","), strings.Join(c.Proof, ","))
		eq("earlier checkpoint", got.Consistency.FromNote, c.FromNote)
		from, _ := hex.DecodeString(c.FromRoot)
		var cpf [][]byte
		for _, h := range c.Proof {
			b, _ := hex.DecodeString(h)
			cpf = append(cpf, b)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, c.FromSize, v.Log.TreeSize, cpf, from, root); err != nil {
			t.Errorf("consistency proof: %v", err)
		}
		fcp := credit.Checkpoint{Region: credit.RegionID(v.Log.Region), Size: c.FromSize, Root: from, Note: c.FromNote}
		if err := fcp.Verify(pub("region_440100")); err != nil {
			t.Error(err)
		}
	})
}
