package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

// The test world: region sz answers, region gz requests on behalf of its
// banks bank-a and bank-b, about one enterprise that consented.
const (
	sz      credit.RegionID = "sz"
	gz      credit.RegionID = "gz"
	bankA   credit.BankID   = "bank-a"
	bankB   credit.BankID   = "bank-b"
	subject credit.USCC     = "91440300708461136T"
)

var t0 = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)

func key(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("ccnode audit test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pub(name string) []byte { return key(name).Public().(ed25519.PublicKey) }

// pki is the test world's enterprise identity: authority "authority",
// registered by sz for its divisions, certified the enterprise's key
// ("enterprise") for subject.
type pki struct {
	caDER   []byte
	caID    string
	leafDER []byte
}

// newPKI makes the authority's certificate and the enterprise's.
func newPKI(t testing.TB) pki {
	t.Helper()
	ca, err := credit.NewAuthorityCert("Test Identity Authority", key("authority"), t0.Add(-365*24*time.Hour), t0.Add(5*365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	leaf := issue(t, ca, key("authority"), subject, pub("enterprise"), t0.Add(-30*24*time.Hour), t0.Add(365*24*time.Hour))
	return pki{caDER: ca, caID: credit.AuthorityID(ca), leafDER: leaf}
}

// issue certifies pub for uscc under the authority (caDER, caKey).
func issue(t testing.TB, caDER []byte, caKey ed25519.PrivateKey, uscc credit.USCC, pub []byte, nb, na time.Time) []byte {
	t.Helper()
	der, err := credit.IssueEnterpriseCert(caDER, caKey, uscc, "Enterprise "+string(uscc), ed25519.PublicKey(pub), nb, na)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// authority is the ledger record of the fixture's authority.
func (p pki) authority() credit.IdentityAuthority {
	return credit.IdentityAuthority{ID: p.caID, Name: "Test Identity Authority", Cert: p.caDER, Region: sz,
		Divisions: []string{"4403"}, Status: credit.StatusActive, RegisteredAt: t0.Add(-2 * time.Hour)}
}

// signedAt is when the fixture's enterprise signs its consents: before
// any of them is recorded.
var signedAt = t0.Add(-time.Minute)

type fixture struct {
	t        testing.TB
	pki      pki
	snap     *Snapshot
	consents map[string]credit.ConsentGrant
	receipts []credit.Receipt
	acks     [][]credit.Ack
	// extra receipts the requester holds (signed and acknowledged) that
	// the answerer's log does not.
	extra     []credit.Receipt
	extraAcks []credit.Ack
	cpEvery   int
	tree      *testonly.Tree
}

func (f *fixture) grant(id string, grantee credit.BankID, cats []credit.Category, recordedAt time.Time) credit.ConsentGrant {
	f.t.Helper()
	return f.grantSigned(id, grantee, cats, recordedAt, key("enterprise"), [][]byte{f.pki.leafDER}, signedAt)
}

// grantSigned is grant with the enterprise's signature made by signer
// under the certificate chain, at the time given.
func (f *fixture) grantSigned(id string, grantee credit.BankID, cats []credit.Category, recordedAt time.Time,
	signer ed25519.PrivateKey, chain [][]byte, at time.Time) credit.ConsentGrant {
	f.t.Helper()
	g := credit.ConsentGrant{Version: credit.ConsentVersion, ID: id, Subject: subject, Grantee: grantee, Categories: cats,
		Purpose: credit.PurposeCreditReview, ValidFrom: t0, ValidUntil: t0.Add(30 * 24 * time.Hour), Region: sz}
	if err := g.SignEnterprise(signer, chain, at); err != nil {
		f.t.Fatal(err)
	}
	if err := g.Countersign(key("sz")); err != nil {
		f.t.Fatal(err)
	}
	c, err := g.Commitment()
	if err != nil {
		f.t.Fatal(err)
	}
	f.snap.ConsentRecords[id] = credit.ConsentCommitment{ID: id, Commitment: c[:], Region: sz, ValidFrom: g.ValidFrom,
		ValidUntil: g.ValidUntil, Status: credit.ConsentActive, RecordedAt: recordedAt}
	f.consents[id] = g
	return g
}

// newFixture builds n receipts of sz answering gz, every one with a valid
// consent, signature and acknowledgement; receipt 0 returned no records.
func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	return newFixtureWith(t, n, newPKI(t))
}

// newFixtureWith is newFixture under the given certificates: two fixtures
// that must hold the same consent documents share them (certificates have
// random serial numbers).
func newFixtureWith(t testing.TB, n int, p pki) *fixture {
	t.Helper()
	f := &fixture{t: t, pki: p, snap: NewSnapshot(), consents: map[string]credit.ConsentGrant{}, cpEvery: 4}
	f.snap.TakenAt = t0.Add(48 * time.Hour)
	f.snap.AddAuthority(f.pki.authority())
	for _, r := range []credit.RegionID{sz, gz} {
		f.snap.AddRegion(credit.RegionMember{ID: r, Name: string(r), MSPID: string(r) + "MSP", PubKey: pub(string(r)), Status: credit.StatusActive, UpdatedAt: t0.Add(-time.Hour)})
	}
	for _, b := range []credit.BankID{bankA, bankB} {
		f.snap.AddBank(credit.BankMember{ID: b, Name: string(b), Region: gz, PubKey: pub(string(b)), Status: credit.StatusActive, UpdatedAt: t0.Add(-time.Hour)})
	}
	f.grant("consent-a-0001", bankA, []credit.Category{credit.Penalty, credit.Licensing}, t0.Add(time.Minute))
	for i := range n {
		f.add(f.receipt(i, bankA, "consent-a-0001", []credit.Category{credit.Penalty}))
	}
	f.receipts[0].RecordCount = 0
	f.resign(0)
	f.acks[0] = nil
	return f
}

func (f *fixture) when(i int) time.Time { return t0.Add(time.Hour + time.Duration(i)*time.Minute) }

// receipt builds receipt i (unsigned by the region) for a query by bank.
func (f *fixture) receipt(i int, bank credit.BankID, consentID string, cats []credit.Category) credit.Receipt {
	f.t.Helper()
	doc := f.consents[consentID]
	at := f.when(i)
	q := credit.Query{Version: 1, Bank: bank, Subject: subject, Categories: cats, Purpose: credit.PurposeCreditReview,
		ConsentID: consentID, Consent: &doc, Nonce: fmt.Sprintf("nonce-%06d", i), Time: at.Add(-time.Second)}
	if err := q.Sign(key(string(bank))); err != nil {
		f.t.Fatal(err)
	}
	id, err := credit.ReceiptID(sz, &q)
	if err != nil {
		f.t.Fatal(err)
	}
	digest := sha256.Sum256([]byte(fmt.Sprintf("report %d", i)))
	return credit.Receipt{Version: 1, ID: id, Query: q, Requester: gz, Answerer: sz, Categories: cats,
		ReportDigest: digest[:], RecordCount: 3, Time: at}
}

// add signs r as sz and acknowledges it as gz.
func (f *fixture) add(r credit.Receipt) {
	f.t.Helper()
	if err := r.Sign(key("sz")); err != nil {
		f.t.Fatal(err)
	}
	f.receipts = append(f.receipts, r)
	f.acks = append(f.acks, []credit.Ack{f.ack(&r)})
}

func (f *fixture) ack(r *credit.Receipt) credit.Ack {
	f.t.Helper()
	a, err := credit.NewAck(r, gz, r.Time.Add(time.Second), key("gz"))
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

// resign signs receipt i again after a change, with its acknowledgement.
func (f *fixture) resign(i int) {
	f.t.Helper()
	if err := f.receipts[i].Sign(key("sz")); err != nil {
		f.t.Fatal(err)
	}
	f.acks[i] = []credit.Ack{f.ack(&f.receipts[i])}
}

func (f *fixture) leaf(i int) []byte {
	f.t.Helper()
	b, err := f.receipts[i].LeafBytes()
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// anchor logs the receipts and anchors a checkpoint signed by sz every
// cpEvery receipts (and at the end), two minutes after its last receipt.
func (f *fixture) anchor() {
	f.t.Helper()
	f.tree = testonly.New(rfc6962.DefaultHasher)
	for i := range f.receipts {
		f.tree.AppendData(f.leaf(i))
		if (i+1)%f.cpEvery == 0 || i == len(f.receipts)-1 {
			f.anchorAt(uint64(i+1), f.when(i).Add(2*time.Minute))
		}
	}
}

func (f *fixture) anchorAt(size uint64, at time.Time) {
	f.t.Helper()
	cp := credit.Checkpoint{Region: sz, Size: size, Root: f.tree.HashAt(size)}
	if err := cp.Sign("test", key("sz")); err != nil {
		f.t.Fatal(err)
	}
	f.snap.AddCheckpoint(credit.AnchoredCheckpoint{Checkpoint: cp, AnchoredAt: at, TxID: fmt.Sprintf("tx-%d", size)})
}

func (f *fixture) answeredLines() []credit.ExportLine {
	out := make([]credit.ExportLine, len(f.receipts))
	for i := range f.receipts {
		out[i] = credit.ExportLine{Index: uint64(i), Receipt: f.leaf(i), Acks: f.acks[i]}
	}
	return out
}

func (f *fixture) receivedLines() []credit.ExportLine {
	var out []credit.ExportLine
	for i := range f.receipts {
		if len(f.acks[i]) == 0 {
			continue
		}
		out = append(out, credit.ExportLine{Index: uint64(len(out)), Receipt: f.leaf(i), Acks: f.acks[i][:1]})
	}
	for i := range f.extra {
		b, err := f.extra[i].LeafBytes()
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, credit.ExportLine{Index: uint64(len(out)), Receipt: b, Acks: []credit.Ack{f.extraAcks[i]}})
	}
	return out
}

func encodeExport(t testing.TB, kind credit.ExportKind, region credit.RegionID, lines []credit.ExportLine) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := credit.NewExportWriter(&buf, credit.ExportHeader{Kind: kind, Region: region, Size: uint64(len(lines)), ExportedAt: t0.Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if err := w.Write(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testOptions(t testing.TB) Options {
	return Options{Now: t0.Add(48 * time.Hour), AnchorDelay: time.Hour, Workers: 3, Logger: testLogger(t)}
}

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger { return slog.New(slog.NewTextHandler(tbWriter{t}, nil)) }
