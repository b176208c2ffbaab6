package consortium

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/p2p"
)

// The attack of issue 14: a region's admin (or its leaked token) signs a
// consent for an enterprise registered in another region with a key of
// its own making and has its own bank query. Every region must refuse it,
// however the consent's commitment reaches the ledger.

// selfSigned is an enterprise key with a self-signed certificate naming
// u: what anyone can make.
func selfSigned(t *testing.T, u credit.USCC) Enterprise {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "forged", SerialNumber: string(u)},
		NotBefore: testkit.CertValidFrom, NotAfter: testkit.CertValidUntil, KeyUsage: x509.KeyUsageDigitalSignature,
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return Enterprise{USCC: u, Key: key, Chain: [][]byte{der}}
}

// forgeries are the keys Shenzhen can get certified for a Guangzhou
// enterprise: none is vouched for by an authority registered for
// Guangzhou's divisions.
func forgeries(t *testing.T, sz *Region, u credit.USCC) map[string]Enterprise {
	t.Helper()
	unregistered := testkit.NewAuthority(t, sz.ID, "4401")
	key, chain := unregistered.Issue(t, u)
	own, err := sz.Authority.Certify(u, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Enterprise{
		"self-signed certificate":                    selfSigned(t, u),
		"certificate from an unregistered authority": {USCC: u, Key: key, Chain: chain},
		"certificate from Shenzhen's own authority":  own,
	}
}

// identityCluster is three regions on mocknet, each with a Guangzhou
// enterprise's records, and a client on Shenzhen's libp2p host that asks
// the other regions directly, as a Shenzhen node that skips its own
// checks would.
type identityCluster struct {
	*Consortium
	sz, gz, zh *Region
	bank       *Bank // Shenzhen's bank
	victim     credit.USCC
	ask        *p2p.Client
}

func newIdentityCluster(t *testing.T) *identityCluster {
	t.Helper()
	c, err := Start(context.Background(), Options{Logger: testkit.LoggerAt(t, slog.LevelWarn), Tune: fastTune, Mocknet: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	x := &identityCluster{Consortium: c, sz: c.Region("440300"), gz: c.Region("440100"), zh: c.Region("440400"),
		bank: c.Banks[0], victim: testkit.USCC(t, "440100", 9)}
	for i, r := range c.Regions {
		mustPut(t, r, rec(t, x.victim, credit.Tax, i+1), rec(t, x.victim, credit.Judicial, i+10))
	}
	members := p2p.NewMembership(testkit.Logger(t), nil)
	if err := members.SetMembers(x.sz.Node.View().Regions()); err != nil {
		t.Fatal(err)
	}
	if x.ask, err = p2p.NewClient(p2p.ClientConfig{Host: x.sz.host, NetworkID: x.sz.Node.Config().P2P.NetworkID, Members: members}); err != nil {
		t.Fatal(err)
	}
	return x
}

var idCats = []credit.Category{credit.Tax, credit.Judicial}

// grant is ent's consent for Shenzhen's bank, issued in Shenzhen.
func (x *identityCluster) grant(t *testing.T, ent Enterprise) credit.ConsentGrant {
	t.Helper()
	g, err := ent.Grant(x.bank.ID, x.sz.ID, idCats, credit.PurposeLoanApplication, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// putDirectly countersigns g as Shenzhen and puts its commitment on the
// ledger through Shenzhen's own ledger client, bypassing its node.
func (x *identityCluster) putDirectly(t *testing.T, g credit.ConsentGrant) credit.ConsentGrant {
	t.Helper()
	if err := g.Countersign(x.sz.Key); err != nil {
		t.Fatal(err)
	}
	sum, err := g.Commitment()
	if err != nil {
		t.Fatal(err)
	}
	if err := x.sz.Ledger.RecordConsent(context.Background(), credit.ConsentCommitment{ID: g.ID, Commitment: sum[:], Region: g.Region,
		ValidFrom: g.ValidFrom.UTC(), ValidUntil: g.ValidUntil.UTC(), Status: credit.ConsentActive}); err != nil {
		t.Fatal(err)
	}
	return g
}

// everyRegionRefuses checks that a query under g gets no record from any
// region: the bank's query through its home node's API is refused with
// want, and Guangzhou and Zhuhai refuse Shenzhen's direct request with
// want too, without logging a receipt.
func (x *identityCluster) everyRegionRefuses(t *testing.T, g *credit.ConsentGrant, want credit.Code) {
	t.Helper()
	ctx := context.Background()
	q, err := x.bank.Query(x.victim, idCats, credit.PurposeLoanApplication, g, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res, err := x.Client(x.sz).Query(ctx, &q)
	var se *node.StatusError
	if !errors.As(err, &se) || se.Reason() != want || se.Status != http.StatusForbidden {
		t.Fatalf("bank query through Shenzhen's API: %+v, %v; want HTTP 403 %s", res, err, want)
	}
	for _, r := range []*Region{x.gz, x.zh} {
		logged := r.Node.Log().Size()
		q, err := x.bank.Query(x.victim, idCats, credit.PurposeLoanApplication, g, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		qj, _, err := q.CanonicalAndDigest()
		if err != nil {
			t.Fatal(err)
		}
		reply, err := x.ask.Ask(ctx, r.ID, p2p.EncodeRequest(x.sz.ID, qj), nil)
		if got := credit.CodeOf(err); got != want || reply != nil {
			t.Fatalf("region %s answered Shenzhen's direct request: %+v, %v; want refusal %s", r.ID, reply, err, want)
		}
		if n := r.Node.Log().Size(); n != logged {
			t.Fatalf("region %s logged %d receipts for a refused request", r.ID, n-logged)
		}
	}
}

// (a) Shenzhen's admin records a consent for a Guangzhou enterprise signed
// with a key no authority registered for Guangzhou certified: refused at
// recording (HTTP 403), and nothing reaches the ledger. The enterprise's
// own certified key, through the same admin call, is recorded.
func TestForgedConsentRefusedAtRecording(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-region cluster")
	}
	ctx := context.Background()
	x := newIdentityCluster(t)
	for name, ent := range forgeries(t, x.sz, x.victim) {
		t.Run(name, func(t *testing.T) {
			g := x.grant(t, ent)
			_, err := x.Client(x.sz).RecordConsent(ctx, g)
			var se *node.StatusError
			if !errors.As(err, &se) || se.Status != http.StatusForbidden || se.Reason() != credit.CodeConsentUncertified {
				t.Fatalf("recording a forged consent: %v; want HTTP 403 %s", err, credit.CodeConsentUncertified)
			}
			if _, err := x.sz.Ledger.Consent(ctx, g.ID); !errors.Is(err, network.ErrNotFound) {
				t.Fatalf("the refused consent is on the ledger: %v", err)
			}
		})
	}
	t.Run("a broken enterprise signature", func(t *testing.T) {
		g := x.grant(t, certified(t, x.Consortium, x.victim))
		g.EnterpriseSig[0] ^= 1
		_, err := x.Client(x.sz).RecordConsent(ctx, g)
		var se *node.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusForbidden || se.Reason() != credit.CodeConsentSignature {
			t.Fatalf("recording a consent with a broken signature: %v; want HTTP 403 %s", err, credit.CodeConsentSignature)
		}
	})
	t.Run("the enterprise's certified key", func(t *testing.T) {
		g := x.grant(t, certified(t, x.Consortium, x.victim))
		res, err := x.Client(x.sz).RecordConsent(ctx, g)
		if err != nil {
			t.Fatalf("recording a certified consent: %v", err)
		}
		q, _ := x.bank.Query(x.victim, idCats, credit.PurposeLoanApplication, res.Consent, time.Now())
		cons, err := x.Client(x.sz).Query(ctx, &q)
		if err != nil || cons.RecordCount != 2*len(x.Regions) {
			t.Fatalf("query under the certified consent: %+v, %v", cons, err)
		}
	})
}

// (b) The forged consent's commitment put on the ledger another way:
// Shenzhen's own ledger client records it. No region answers, whether the
// bank asks through its home node or Shenzhen asks the others directly.
func TestForgedConsentOnLedgerRefusedByEveryRegion(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-region cluster")
	}
	x := newIdentityCluster(t)
	for name, ent := range forgeries(t, x.sz, x.victim) {
		t.Run(name, func(t *testing.T) {
			g := x.putDirectly(t, x.grant(t, ent))
			x.everyRegionRefuses(t, &g, credit.CodeConsentUncertified)
		})
	}
}

// (c) A certificate the authority revoked before the consent is refused
// at recording, and put on the ledger directly it is refused by every
// region; an authority's retirement stops every region answering the
// consents it certified.
func TestRevokedCertificateAndRetiredAuthority(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-region cluster")
	}
	ctx := context.Background()
	x := newIdentityCluster(t)

	revoked := certified(t, x.Consortium, x.victim)
	leaf, err := x509.ParseCertificate(revoked.Chain[0])
	if err != nil {
		t.Fatal(err)
	}
	trustBefore := x.sz.Node.View().Trust()
	if _, err := x.gz.Ledger.RevokeCertificate(ctx, credit.CertRevocation{ID: credit.RevocationID(leaf), Authority: x.gz.Authority.Record.ID}); err != nil {
		t.Fatal(err)
	}
	poll(t, "Shenzhen learns the revocation", func() bool { return x.sz.Node.View().Trust() != trustBefore })
	g := x.grant(t, revoked)
	_, err = x.Client(x.sz).RecordConsent(ctx, g)
	var se *node.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden || se.Reason() != credit.CodeConsentUncertified {
		t.Fatalf("recording under a revoked certificate: %v; want HTTP 403 %s", err, credit.CodeConsentUncertified)
	}
	g = x.putDirectly(t, g)
	x.everyRegionRefuses(t, &g, credit.CodeConsentUncertified)

	// A consent recorded under Guangzhou's authority is answered by every
	// region until Guangzhou retires the authority.
	res, err := x.Client(x.sz).RecordConsent(ctx, x.grant(t, certified(t, x.Consortium, x.victim)))
	if err != nil {
		t.Fatal(err)
	}
	good := res.Consent
	q, _ := x.bank.Query(x.victim, idCats, credit.PurposeLoanApplication, good, time.Now())
	if cons, err := x.Client(x.sz).Query(ctx, &q); err != nil || cons.RecordCount != 2*len(x.Regions) {
		t.Fatalf("query before the retirement: %+v, %v", cons, err)
	}
	if _, err := x.gz.Ledger.RetireAuthority(ctx, x.gz.Authority.Record.ID); err != nil {
		t.Fatal(err)
	}
	for _, r := range x.Regions {
		poll(t, "region "+string(r.ID)+" learns the retirement", func() bool {
			a, ok := r.Node.View().Trust().Authority(x.gz.Authority.Record.ID)
			return ok && a.RetiredAt != nil
		})
	}
	x.everyRegionRefuses(t, good, credit.CodeConsentUncertified)
}
