// Package ledgertest is the conformance suite every network.Ledger backend
// must pass: the embedded ledger in its own tests, and a real Fabric
// network in network/fabric's. The suite bootstraps the ledger itself and
// uses fresh ids throughout, so it runs once on one shared network. It also
// holds the benchmark bodies (BenchAnchor, BenchSubmit, ...) every backend
// runs, so their figures compare.
//
// It drives a ledger only through network.Ledger and owns no backend.
package ledgertest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// Region is one member region as the suite drives it.
type Region struct {
	// Member is the record to bootstrap; its PubKey must match Key and its
	// MSPID the identity Ledger acts as.
	Member credit.RegionMember
	// Key signs the region's checkpoints.
	Key ed25519.PrivateKey
	// Ledger acts as the region's MSP identity.
	Ledger network.Ledger
}

// Harness is what a backend gives the suite: three or more regions on a
// ledger that has not been bootstrapped, and optionally a client whose
// identity is valid on the ledger but belongs to no member region.
type Harness struct {
	Regions  []Region
	Outsider network.Ledger
	// Candidate is an identity that may write to the ledger but that the
	// bootstrap leaves out: the governance tests make it a region by the
	// others' votes, then retire it. Nil means the Outsider (the embedded
	// ledger lets any known identity write; Fabric only channel writers).
	Candidate network.Ledger
	// EventWait bounds how long the suite waits for an event to arrive;
	// zero means 10 s, or 60 s when Slow.
	EventWait time.Duration
	// Slow says every submit waits for a real block (Fabric's batch
	// timeout and endorsement), so waits are sized for it.
	Slow bool
}

// NewRegion makes a region member record with a fresh key. peerID is any
// non-empty string: the contract stores it, the p2p layer checks it.
func NewRegion(id credit.RegionID, name, mspID string, divisions ...string) (credit.RegionMember, ed25519.PrivateKey) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	return credit.RegionMember{
		ID: id, Name: name, Divisions: divisions, MSPID: mspID,
		PeerID: "peer-" + string(id), Addrs: []string{"/ip4/127.0.0.1/tcp/4001"},
		PubKey: pub, Status: credit.StatusActive,
	}, key
}

func uniq(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func wantKind(t *testing.T, err, kind error, what string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: got %v, want %v", what, err, kind)
	}
	var ne *network.Error
	if !errors.As(err, &ne) {
		t.Fatalf("%s: error %v is not a *network.Error", what, err)
	}
}

// Run runs the whole suite. Subtests depend on the bootstrap subtest.
func Run(t *testing.T, h Harness) {
	if len(h.Regions) < 3 {
		t.Fatalf("ledgertest needs at least 3 regions, got %d", len(h.Regions))
	}
	if h.EventWait == 0 {
		h.EventWait = 10 * time.Second
		if h.Slow {
			h.EventWait = 60 * time.Second
		}
	}
	ctx := context.Background()
	a, b := h.Regions[0], h.Regions[1]
	var members []credit.RegionMember
	for _, r := range h.Regions {
		members = append(members, r.Member)
	}
	bankPub, _, _ := ed25519.GenerateKey(rand.Reader)
	bankA := credit.BankMember{ID: credit.BankID(uniq("bank-a")), Name: "Bank A", Region: a.Member.ID, PubKey: bankPub, Status: credit.StatusActive}

	ok := t.Run("bootstrap", func(t *testing.T) {
		if h.Outsider != nil {
			err := h.Outsider.Bootstrap(ctx, members, nil)
			wantKind(t, err, network.ErrDenied, "bootstrap by an identity outside the regions")
		}
		if err := a.Ledger.Bootstrap(ctx, members, []credit.BankMember{bankA}); err != nil {
			t.Fatalf("bootstrap: %v", err)
		}
		err := b.Ledger.Bootstrap(ctx, members, nil)
		wantKind(t, err, network.ErrConflict, "replayed bootstrap")
		var got []credit.RegionMember
		eventually(t, h, "members visible to another region", func() (err error) {
			got, err = b.Ledger.Regions(ctx)
			if err == nil && len(got) != len(members) {
				err = fmt.Errorf("Regions: %d, want %d", len(got), len(members))
			}
			return err
		})
		for _, r := range got {
			if r.Status != credit.StatusActive || r.UpdatedAt.IsZero() {
				t.Errorf("region %s: status %s, updated %s", r.ID, r.Status, r.UpdatedAt)
			}
		}
	})
	if !ok {
		t.Fatal("bootstrap failed; the rest of the suite needs it")
	}

	t.Run("membership", func(t *testing.T) { testMembership(ctx, t, h, bankA) })
	t.Run("consents", func(t *testing.T) { testConsents(ctx, t, h) })
	t.Run("checkpoints", func(t *testing.T) { testCheckpoints(ctx, t, h) })
	t.Run("authorities", func(t *testing.T) { testAuthorities(ctx, t, h) })
	t.Run("events", func(t *testing.T) { testEvents(ctx, t, h, bankA.ID) })
	if h.Outsider != nil {
		t.Run("outsider", func(t *testing.T) { testOutsider(ctx, t, h, bankA.ID) })
	}
	if h.Candidate == nil {
		h.Candidate = h.Outsider
	}
	if h.Candidate != nil {
		// Last: it makes the candidate a region, then retires it.
		t.Run("governance", func(t *testing.T) { testGovernance(ctx, t, h) })
	}
}

func testMembership(ctx context.Context, t *testing.T, h Harness, bankA credit.BankMember) {
	a, b := h.Regions[0], h.Regions[1]
	r, err := b.Ledger.Region(ctx, a.Member.ID)
	if err != nil || r.MSPID != a.Member.MSPID || !bytes.Equal(r.PubKey, a.Member.PubKey) {
		t.Fatalf("Region(%s) = %+v, %v", a.Member.ID, r, err)
	}
	_, err = b.Ledger.Region(ctx, "nowhere")
	wantKind(t, err, network.ErrNotFound, "unknown region")

	upd := r
	upd.Addrs = []string{"/ip4/127.0.0.1/tcp/5001"}
	if err := a.Ledger.UpdateRegion(ctx, upd); err != nil {
		t.Fatalf("own update: %v", err)
	}
	eventually(t, h, "update visible to another region", func() error {
		if got, err := b.Ledger.Region(ctx, a.Member.ID); err != nil || len(got.Addrs) != 1 || got.Addrs[0] != upd.Addrs[0] {
			return fmt.Errorf("got %+v, %v", got, err)
		}
		return nil
	})
	wantKind(t, b.Ledger.UpdateRegion(ctx, upd), network.ErrDenied, "region updating another region")
	stolen := upd
	stolen.MSPID = b.Member.MSPID
	wantKind(t, a.Ledger.UpdateRegion(ctx, stolen), network.ErrDenied, "region taking another MSP id")
	// Retirement is the consortium's vote (RetireRegion), never a region's
	// own edit of its record.
	retired := upd
	retired.Status = credit.StatusRetired
	wantKind(t, a.Ledger.UpdateRegion(ctx, retired), network.ErrDenied, "region retiring itself through its own record")
	if got, err := a.Ledger.Region(ctx, a.Member.ID); err != nil || got.Status != credit.StatusActive {
		t.Fatalf("after a refused self-retirement: %+v, %v, want the region active", got, err)
	}
	// A region's divisions are the ones its admission approved: widening
	// them would let it certify and query for other regions' enterprises.
	widened := upd
	widened.Divisions = append(slices.Clone(upd.Divisions), "4")
	wantKind(t, a.Ledger.UpdateRegion(ctx, widened), network.ErrDenied, "region widening its own divisions")
	// Another region's peer id or node key would route its requests, and
	// verify its receipts, as this region's.
	twin := upd
	twin.PeerID = b.Member.PeerID
	wantKind(t, a.Ledger.UpdateRegion(ctx, twin), network.ErrConflict, "region taking another region's peer id")
	if got, err := a.Ledger.Region(ctx, a.Member.ID); err != nil || !slices.Equal(got.Divisions, upd.Divisions) || got.PeerID != upd.PeerID {
		t.Fatalf("after refused updates: %+v, %v, want the record as it was", got, err)
	}

	got, err := b.Ledger.Bank(ctx, bankA.ID)
	if err != nil || got.Region != a.Member.ID || got.Status != credit.StatusActive {
		t.Fatalf("bootstrapped bank: %+v, %v", got, err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	nb := credit.BankMember{ID: credit.BankID(uniq("bank-b")), Name: "Bank B", Region: b.Member.ID, PubKey: pub}
	wantKind(t, a.Ledger.RegisterBank(ctx, nb), network.ErrDenied, "registering another region's bank")
	if err := b.Ledger.RegisterBank(ctx, nb); err != nil {
		t.Fatalf("register own bank: %v", err)
	}
	hijack := nb
	hijack.Region = a.Member.ID
	wantKind(t, a.Ledger.RegisterBank(ctx, hijack), network.ErrDenied, "re-registering another region's bank as own")
	wantKind(t, a.Ledger.RetireBank(ctx, nb.ID), network.ErrDenied, "retiring another region's bank")
	if err := b.Ledger.RetireBank(ctx, nb.ID); err != nil {
		t.Fatalf("retire own bank: %v", err)
	}
	eventually(t, h, "retirement visible to another region", func() error {
		if got, err := a.Ledger.Bank(ctx, nb.ID); err != nil || got.Status != credit.StatusRetired {
			return fmt.Errorf("bank %+v, %v", got, err)
		}
		return nil
	})
	banks, err := a.Ledger.Banks(ctx)
	if err != nil || len(banks) < 2 {
		t.Fatalf("Banks: %d, %v", len(banks), err)
	}
	if h.Outsider != nil {
		wantKind(t, h.Outsider.RegisterBank(ctx, nb), network.ErrDenied, "outsider registering a bank")
	}
}

func commitment(id string, region credit.RegionID, from time.Time) credit.ConsentCommitment {
	c := credit.ConsentCommitment{ID: id, Commitment: bytes.Repeat([]byte{0xab}, 32), Region: region,
		ValidFrom: from.UTC(), ValidUntil: from.Add(30 * 24 * time.Hour).UTC()}
	return c
}

func testConsents(ctx context.Context, t *testing.T, h Harness) {
	a, b := h.Regions[0], h.Regions[1]
	start := time.Now().Add(-time.Hour)
	id := uniq("consent")
	c := commitment(id, a.Member.ID, start)
	wantKind(t, b.Ledger.RecordConsent(ctx, c), network.ErrDenied, "recording a consent issued by another region")
	if err := a.Ledger.RecordConsent(ctx, c); err != nil {
		t.Fatalf("record: %v", err)
	}
	if err := a.Ledger.RecordConsent(ctx, c); err != nil {
		t.Fatalf("re-recording the same commitment must be a no-op: %v", err)
	}
	other := c
	other.Commitment = bytes.Repeat([]byte{0xcd}, 32)
	wantKind(t, a.Ledger.RecordConsent(ctx, other), network.ErrConflict, "same id, other commitment")
	bad := commitment(uniq("consent"), a.Member.ID, start)
	bad.Commitment = []byte{1, 2, 3}
	wantKind(t, a.Ledger.RecordConsent(ctx, bad), network.ErrInvalid, "short commitment")

	var got credit.ConsentCommitment
	eventually(t, h, "consent visible to another region", func() (err error) {
		got, err = b.Ledger.Consent(ctx, id)
		if err == nil && (got.Status != credit.ConsentActive || !bytes.Equal(got.Commitment, c.Commitment) || got.RecordedAt.IsZero()) {
			err = fmt.Errorf("Consent = %+v", got)
		}
		return err
	})
	_, err := b.Ledger.Consent(ctx, uniq("missing"))
	wantKind(t, err, network.ErrNotFound, "unknown consent")

	// A client cannot bring its own revocation time: a commitment recorded
	// as "revoked yesterday" is stored active, with no revocation.
	backdated := commitment(uniq("consent"), a.Member.ID, start)
	past := time.Now().Add(-24 * time.Hour)
	backdated.Status, backdated.RevokedAt = credit.ConsentRevoked, &past
	if err := a.Ledger.RecordConsent(ctx, backdated); err != nil {
		t.Fatalf("record: %v", err)
	}
	if got, _ := a.Ledger.Consent(ctx, backdated.ID); got.Status != credit.ConsentActive || got.RevokedAt != nil {
		t.Fatalf("client-supplied revocation was kept: %+v", got)
	}

	_, err = b.Ledger.RevokeConsent(ctx, id)
	wantKind(t, err, network.ErrDenied, "revocation by a region that did not issue the consent")
	beforeRevoke := time.Now()
	rev, err := a.Ledger.RevokeConsent(ctx, id)
	if err != nil || rev.Status != credit.ConsentRevoked || rev.RevokedAt == nil {
		t.Fatalf("revoke: %+v, %v", rev, err)
	}
	if rev.RevokedAt.Before(got.RecordedAt) {
		t.Fatalf("revoked at %s, before it was recorded at %s", rev.RevokedAt, got.RecordedAt)
	}
	// The revocation carries the transaction's time: now, give or take the
	// clock skew a peer tolerates — not any earlier time.
	if rev.RevokedAt.Before(beforeRevoke.Add(-5*time.Minute)) || rev.RevokedAt.After(time.Now().Add(5*time.Minute)) {
		t.Fatalf("revoked at %s, but revoked around %s", rev.RevokedAt, beforeRevoke)
	}
	again, err := a.Ledger.RevokeConsent(ctx, id)
	if err != nil || !again.RevokedAt.Equal(*rev.RevokedAt) {
		t.Fatalf("second revoke must return the first: %+v, %v", again, err)
	}

	// Recording the same commitment again after the revocation is still a
	// no-op: a retried recording cannot bring a revoked consent back.
	if err := a.Ledger.RecordConsent(ctx, c); err != nil {
		t.Fatalf("re-recording after revocation: %v", err)
	}
	eventually(t, h, "revocation kept after re-recording", func() error {
		if cur, err := b.Ledger.Consent(ctx, id); err != nil || cur.Status != credit.ConsentRevoked || !cur.RevokedAt.Equal(*rev.RevokedAt) {
			return fmt.Errorf("after re-recording a revoked consent: %+v, %v", cur, err)
		}
		return nil
	})

	// Status at a time: before the revocation committed it was active.
	atBefore := got.RecordedAt.Add(time.Millisecond)
	if atBefore.After(*rev.RevokedAt) {
		atBefore = got.RecordedAt
	}
	cc, st, err := b.Ledger.ConsentAt(ctx, id, atBefore)
	if err != nil || st != credit.ConsentActive || cc.RevokedAt != nil {
		t.Fatalf("ConsentAt(before revocation) = %s %+v, %v (recorded %s revoked %s, local clock before revoke %s)", st, cc, err, got.RecordedAt, rev.RevokedAt, beforeRevoke)
	}
	eventually(t, h, "revocation visible to another region", func() error {
		_, st, err := b.Ledger.ConsentAt(ctx, id, rev.RevokedAt.Add(time.Millisecond))
		if err == nil && st != credit.ConsentRevoked {
			err = fmt.Errorf("status %s", st)
		}
		return err
	})
	_, _, err = b.Ledger.ConsentAt(ctx, id, got.RecordedAt.Add(-time.Hour))
	wantKind(t, err, network.ErrNotFound, "consent before it was recorded")
}

// Network is the network id the suite's checkpoints name in their origin.
const Network = "ledgertest"

func signed(t *testing.T, r Region, size uint64, root []byte) credit.Checkpoint {
	t.Helper()
	return signedIn(t, Network, r, size, root)
}

func signedIn(t *testing.T, network string, r Region, size uint64, root []byte) credit.Checkpoint {
	t.Helper()
	cp := credit.Checkpoint{Region: r.Member.ID, Size: size, Root: root}
	if err := cp.Sign(network, r.Key); err != nil {
		t.Fatal(err)
	}
	return cp
}

// flipSignatureBit changes one bit of a one-signature note's Ed25519
// signature, keeping its key name and hash.
func flipSignatureBit(t *testing.T, n string) string {
	t.Helper()
	i := strings.LastIndex(n, " ")
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(n[i+1:], "\n"))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	return n[:i+1] + base64.StdEncoding.EncodeToString(raw) + "\n"
}

func testCheckpoints(ctx context.Context, t *testing.T, h Harness) {
	a, b := h.Regions[0], h.Regions[1]
	tree := testonly.New(rfc6962.DefaultHasher)
	for i := range 12 {
		tree.AppendData([]byte(fmt.Sprintf("receipt %d", i)))
	}
	proof := func(m, n uint64) [][]byte {
		p, err := tree.ConsistencyProof(m, n)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, err := a.Ledger.LatestCheckpoint(ctx, a.Member.ID)
	wantKind(t, err, network.ErrNotFound, "no checkpoint yet")

	cp4 := signed(t, a, 4, tree.HashAt(4))
	first, err := a.Ledger.AnchorCheckpoint(ctx, cp4, nil)
	if err != nil || first.Size != 4 || first.TxID == "" || first.AnchoredAt.IsZero() {
		t.Fatalf("anchor 4: %+v, %v", first, err)
	}
	again, err := a.Ledger.AnchorCheckpoint(ctx, cp4, nil)
	if err != nil || again.TxID != first.TxID {
		t.Fatalf("re-anchoring the same checkpoint must return the first anchoring: %+v, %v", again, err)
	}
	wantKind(t, errOnly(b.Ledger.AnchorCheckpoint(ctx, cp4, nil)), network.ErrDenied, "anchoring another region's checkpoint")

	forged := signed(t, a, 8, tree.HashAt(8))
	forged.Note = flipSignatureBit(t, forged.Note)
	wantKind(t, errOnly(a.Ledger.AnchorCheckpoint(ctx, forged, proof(4, 8))), network.ErrDenied, "bad checkpoint signature")
	byOther := signed(t, Region{Member: a.Member, Key: b.Key}, 8, tree.HashAt(8))
	wantKind(t, errOnly(a.Ledger.AnchorCheckpoint(ctx, byOther, proof(4, 8))), network.ErrDenied, "checkpoint signed with another region's key")
	// The note says 12 leaves; the fields claim 8 (and the proof is for 8).
	sizeLie := signed(t, a, 12, tree.HashAt(8))
	sizeLie.Size = 8
	wantKind(t, errOnly(a.Ledger.AnchorCheckpoint(ctx, sizeLie, proof(4, 8))), network.ErrDenied, "checkpoint whose size differs from its note's")
	otherLog := signedIn(t, Network+"-other", a, 8, tree.HashAt(8))
	wantKind(t, errOnly(a.Ledger.AnchorCheckpoint(ctx, otherLog, proof(4, 8))), network.ErrDenied, "checkpoint naming another origin than the region's log")

	cp8 := signed(t, a, 8, tree.HashAt(8))
	if _, err := a.Ledger.AnchorCheckpoint(ctx, cp8, proof(4, 8)); err != nil {
		t.Fatalf("anchor 8: %v", err)
	}
	wantKind(t, errOnly(a.Ledger.AnchorCheckpoint(ctx, signed(t, a, 6, tree.HashAt(6)), nil)), network.ErrConflict, "smaller size")
	fork := testonly.New(rfc6962.DefaultHasher)
	for i := range 8 {
		fork.AppendData([]byte(fmt.Sprintf("rewritten receipt %d", i)))
	}
	wantKind(t, errOnly(a.Ledger.AnchorCheckpoint(ctx, signed(t, a, 8, fork.HashAt(8)), nil)), network.ErrConflict, "different root at an anchored size")
	wantKind(t, errOnly(a.Ledger.AnchorCheckpoint(ctx, signed(t, a, 12, tree.HashAt(12)), proof(4, 12))), network.ErrDenied, "consistency proof from the wrong size")
	wantKind(t, errOnly(a.Ledger.AnchorCheckpoint(ctx, signed(t, a, 12, tree.HashAt(12)), nil)), network.ErrDenied, "missing consistency proof")
	for i := range 4 {
		fork.AppendData([]byte(fmt.Sprintf("rewritten receipt %d", 8+i)))
	}
	wantKind(t, errOnly(a.Ledger.AnchorCheckpoint(ctx, signed(t, a, 12, fork.HashAt(12)), proof(8, 12))), network.ErrDenied, "rewritten log with the honest proof")
	if _, err := a.Ledger.AnchorCheckpoint(ctx, signed(t, a, 12, tree.HashAt(12)), proof(8, 12)); err != nil {
		t.Fatalf("anchor 12: %v", err)
	}

	var latest credit.AnchoredCheckpoint
	eventually(t, h, "latest checkpoint visible to another region", func() (err error) {
		latest, err = b.Ledger.LatestCheckpoint(ctx, a.Member.ID)
		if err == nil && (latest.Size != 12 || !bytes.Equal(latest.Root, tree.HashAt(12))) {
			err = fmt.Errorf("latest at size %d", latest.Size)
		}
		return err
	})
	if err := latest.Verify(a.Member.PubKey); err != nil {
		t.Fatalf("anchored checkpoint signature: %v", err)
	}
	// The ledger keeps the signed note byte for byte: a standard verifier
	// checks it with the region's public key alone.
	origin, _ := credit.CheckpointOrigin(Network, a.Member.ID)
	vkey, err := note.NewEd25519VerifierKey(origin, a.Member.PubKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if lc, _, _, err := log.ParseCheckpoint([]byte(latest.Note), origin, v); err != nil || lc.Size != 12 || !bytes.Equal(lc.Hash, tree.HashAt(12)) {
		t.Fatalf("standard verifier on the anchored note: %+v, %v", lc, err)
	}
	hist, err := b.Ledger.CheckpointHistory(ctx, a.Member.ID)
	if err != nil || len(hist) != 3 || hist[0].Size != 4 || hist[1].Size != 8 || hist[2].Size != 12 {
		t.Fatalf("history = %+v, %v", hist, err)
	}
}

func errOnly[T any](_ T, err error) error { return err }

// eventually polls f until it succeeds or the harness's wait passes. Reads
// through another region's client go to that region's peer, which on
// Fabric may commit a block a moment after the submitter's peer did.
func eventually(t *testing.T, h Harness, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(h.EventWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		<-tick.C
	}
}

// testEvents reads the stream from the start, then resumes from a middle
// position and checks it continues exactly where it left off.
func testEvents(ctx context.Context, t *testing.T, h Harness, bootBank credit.BankID) {
	a := h.Regions[0]
	// A marker transaction whose event closes the part of the stream we
	// compare, so we know when we have everything written so far.
	marker := commitment(uniq("marker"), a.Member.ID, time.Now().Add(-time.Minute))
	if err := a.Ledger.RecordConsent(ctx, marker); err != nil {
		t.Fatal(err)
	}
	all := collect(ctx, t, h, a.Ledger, network.Position{}, marker.ID)
	kinds := map[network.EventKind]int{}
	for i, ev := range all {
		kinds[ev.Kind]++
		if i > 0 && ev.Position.Block < all[i-1].Position.Block {
			t.Fatalf("event %d at block %d after block %d", i, ev.Position.Block, all[i-1].Position.Block)
		}
		if ev.Time.IsZero() {
			t.Fatalf("event %d has no time", i)
		}
	}
	for _, ev := range all {
		if err := payloadMatches(ev); err != nil {
			t.Errorf("event at %+v: %v", ev.Position, err)
		}
	}
	for _, k := range []network.EventKind{network.EventMemberChanged, network.EventConsentRecorded, network.EventConsentRevoked,
		network.EventCheckpointAnchored, network.EventAuthorityChanged, network.EventCertRevoked} {
		if kinds[k] == 0 {
			t.Errorf("no %s event in %d events", k, len(all))
		}
	}
	if len(all) < 4 {
		t.Fatalf("only %d events", len(all))
	}
	// The bootstrap wrote every region and its bank in one transaction:
	// each must show, with the record's ledger time, so that an auditor
	// replaying events knows every member's key from its first moment.
	boot := map[string]bool{string(bootBank): false}
	for _, r := range h.Regions {
		boot[string(r.Member.ID)] = false
	}
	for _, ev := range all {
		if ev.Kind != network.EventMemberChanged {
			continue
		}
		switch {
		case ev.Region != nil && !ev.Region.UpdatedAt.IsZero() && ev.Time.Equal(ev.Region.UpdatedAt):
			if _, ok := boot[string(ev.Region.ID)]; ok {
				boot[string(ev.Region.ID)] = true
			}
		case ev.Bank != nil && ev.Bank.ID == bootBank && ev.Time.Equal(ev.Bank.UpdatedAt):
			boot[string(bootBank)] = true
		}
	}
	for id, seen := range boot {
		if !seen {
			t.Errorf("bootstrapped member %s has no member_changed event with its ledger time", id)
		}
	}
	// Resuming from an event's Position skips every event of its
	// transaction (a bootstrap's share one).
	mid := len(all) / 2
	last := mid
	for last+1 < len(all) && all[last+1].Position == all[mid].Position {
		last++
	}
	want := all[last+1:]
	rest := collect(ctx, t, h, a.Ledger, all[mid].Position, marker.ID)
	if len(rest) != len(want) {
		t.Fatalf("resumed after event %d: got %d events, want %d", mid, len(rest), len(want))
	}
	for i, ev := range rest {
		if ev.Position != want[i].Position || ev.Kind != want[i].Kind {
			t.Fatalf("resumed event %d = %+v, want %+v", i, ev.Position, want[i].Position)
		}
	}
	t.Run("live", func(t *testing.T) { testLive(ctx, t, h, all[len(all)-1].Position) })
}

// testLive subscribes at the end of the stream, then commits from several
// regions at once while the subscription runs: every new event arrives
// exactly once, none from before the subscription point repeats.
func testLive(ctx context.Context, t *testing.T, h Harness, from network.Position) {
	ctx, cancel := context.WithTimeout(ctx, h.EventWait)
	defer cancel()
	ch, err := h.Regions[2].Ledger.Subscribe(ctx, from)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	want := map[string]bool{}
	var ids [][]string
	for range h.Regions {
		var rids []string
		for range 3 {
			id := uniq("live")
			rids, want[id] = append(rids, id), true
		}
		ids = append(ids, rids)
	}
	errs := make(chan error, len(h.Regions))
	for i, r := range h.Regions {
		go func() {
			for _, id := range ids[i] {
				if err := r.Ledger.RecordConsent(ctx, commitment(id, r.Member.ID, time.Now().Add(-time.Minute))); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	seen := map[string]int{}
	for len(seen) < len(want) {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream closed after %d of %d live events", len(seen), len(want))
			}
			if ev.Position.Block < from.Block || ev.Position == from {
				t.Fatalf("event at %+v repeats history before %+v", ev.Position, from)
			}
			if ev.Kind != network.EventConsentRecorded || ev.Consent == nil || !want[ev.Consent.ID] {
				continue // another test's or another client's event
			}
			if seen[ev.Consent.ID]++; seen[ev.Consent.ID] > 1 {
				t.Fatalf("consent %s delivered twice", ev.Consent.ID)
			}
		case err := <-errs:
			if err != nil {
				t.Fatalf("record: %v", err)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d live events within %s", len(seen), len(want), h.EventWait)
		}
	}
}

func collect(ctx context.Context, t *testing.T, h Harness, l network.Ledger, from network.Position, markerID string) []network.Event {
	t.Helper()
	return collectUntil(ctx, t, h, l, from, func(ev network.Event) bool {
		return ev.Kind == network.EventConsentRecorded && ev.Consent != nil && ev.Consent.ID == markerID
	})
}
