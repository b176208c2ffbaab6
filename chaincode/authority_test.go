package chaincode

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// testAuthority makes an authority record with a fresh dev CA certificate
// for region and divisions.
func testAuthority(t testing.TB, name string, region credit.RegionID, divisions ...string) credit.IdentityAuthority {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := credit.NewAuthorityCert(name, key, t0.Add(-24*time.Hour), t0.Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return credit.IdentityAuthority{ID: credit.AuthorityID(der), Name: name, Cert: der, Region: region, Divisions: divisions}
}

func revID(seed string) string {
	h := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(h[:])
}

// tx runs one transaction of msp at at and returns its error and events.
func (l *memLedger) tx(msp string, at time.Time, f func(Contract, TxContext) error) ([]memEvent, error) {
	return l.run(msp, at, func(x TxContext) error { return f(Contract{}, x) })
}

func authorities(t *testing.T, l *memLedger) []credit.IdentityAuthority {
	t.Helper()
	var out []credit.IdentityAuthority
	if _, err := l.tx("GZMSP", t0.Add(100*time.Hour), func(c Contract, x TxContext) (e error) { out, e = c.GetAuthorities(x); return }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRegisterAuthority(t *testing.T) {
	reg := func(l *memLedger, msp string, at time.Time, a credit.IdentityAuthority) ([]memEvent, error) {
		arg := mustJSON(a)
		return l.tx(msp, at, func(c Contract, x TxContext) error { return c.RegisterAuthority(x, arg) })
	}

	t.Run("for own divisions, stored with the transaction's time", func(t *testing.T) {
		l, _ := bootstrapped(t)
		a := testAuthority(t, "SZ CA", "440300", "4403", "440305")
		// A client's status and times are not taken.
		past := t0.Add(-time.Hour)
		a.Status, a.RegisteredAt, a.RetiredAt = credit.StatusRetired, past, &past
		at := t0.Add(time.Minute)
		evs, err := reg(l, "SZMSP", at, a)
		if err != nil {
			t.Fatal(err)
		}
		got := authorities(t, l)
		if len(got) != 1 || got[0].ID != a.ID || got[0].Status != credit.StatusActive || !got[0].RegisteredAt.Equal(at) || got[0].RetiredAt != nil {
			t.Fatalf("stored %+v", got)
		}
		if !strings.HasPrefix(string(mustKey(t, l, prefixAuthority+a.ID)), "{") {
			t.Fatal("not stored under the authority prefix")
		}
		if len(evs) != 1 || evs[0].name != EventAuthorityChanged {
			t.Fatalf("events %+v", evs)
		}
		var p EventPayload
		if err := json.Unmarshal(evs[0].payload, &p); err != nil || p.Authority == nil || p.Authority.ID != a.ID || !p.Authority.RegisteredAt.Equal(at) {
			t.Fatalf("payload %s (%v)", evs[0].payload, err)
		}
	})

	t.Run("region left empty is the caller's", func(t *testing.T) {
		l, _ := bootstrapped(t)
		a := testAuthority(t, "SZ CA", "", "4403")
		if _, err := reg(l, "SZMSP", t0.Add(time.Minute), a); err != nil {
			t.Fatal(err)
		}
		if got := authorities(t, l); len(got) != 1 || got[0].Region != "440300" {
			t.Fatalf("stored %+v", got)
		}
	})

	t.Run("identical again is a no-op, other content is a conflict", func(t *testing.T) {
		l, _ := bootstrapped(t)
		a := testAuthority(t, "SZ CA", "440300", "4403")
		if _, err := reg(l, "SZMSP", t0.Add(time.Minute), a); err != nil {
			t.Fatal(err)
		}
		evs, err := reg(l, "SZMSP", t0.Add(2*time.Minute), a)
		if err != nil || len(evs) != 0 {
			t.Fatalf("identical re-register: %v, %d events", err, len(evs))
		}
		if got := authorities(t, l); len(got) != 1 || !got[0].RegisteredAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("re-register changed the record: %+v", got)
		}
		renamed := a
		renamed.Name = "another name"
		narrowed := a
		narrowed.Divisions = []string{"440305"}
		for name, b := range map[string]credit.IdentityAuthority{"name": renamed, "divisions": narrowed} {
			if _, err := reg(l, "SZMSP", t0.Add(3*time.Minute), b); CodeOf(err) != CodeConflict {
				t.Fatalf("other %s under the same id: %v", name, err)
			}
		}
	})

	t.Run("the same certificate by another region is a conflict", func(t *testing.T) {
		l, _ := bootstrapped(t)
		a := testAuthority(t, "CA", "440300", "4403")
		if _, err := reg(l, "SZMSP", t0.Add(time.Minute), a); err != nil {
			t.Fatal(err)
		}
		b := a
		b.Region, b.Divisions = "440100", []string{"4401"}
		if _, err := reg(l, "GZMSP", t0.Add(2*time.Minute), b); CodeOf(err) != CodeConflict {
			t.Fatalf("got %v", err)
		}
	})

	sz := testAuthority(t, "SZ CA", "440300", "4403")
	notCA := sz
	{
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: t0, NotAfter: t0.Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		notCA.Cert, notCA.ID = der, credit.AuthorityID(der)
	}
	for _, tc := range []struct {
		name, msp string
		a         func() credit.IdentityAuthority
		code      string
	}{
		{"another region's divisions", "SZMSP", func() credit.IdentityAuthority {
			a := sz
			a.Divisions = []string{"4401"}
			return a
		}, CodeDenied},
		{"one division outside among own", "SZMSP", func() credit.IdentityAuthority {
			a := sz
			a.Divisions = []string{"4403", "440105"}
			return a
		}, CodeDenied},
		{"a prefix wider than the region's", "SZMSP", func() credit.IdentityAuthority {
			a := sz
			a.Divisions = []string{"44"}
			return a
		}, CodeDenied},
		{"for another region", "GZMSP", func() credit.IdentityAuthority { return sz }, CodeDenied},
		{"another region's divisions in the caller's name", "GZMSP", func() credit.IdentityAuthority {
			a := sz
			a.Region = "440100"
			return a
		}, CodeDenied},
		{"by an identity outside the members", "OTHERMSP", func() credit.IdentityAuthority { return sz }, CodeDenied},
		{"id not the certificate's hash", "SZMSP", func() credit.IdentityAuthority {
			a := sz
			a.ID = revID("x")
			return a
		}, CodeInvalid},
		{"not a CA certificate", "SZMSP", func() credit.IdentityAuthority { return notCA }, CodeInvalid},
		{"certificate not DER", "SZMSP", func() credit.IdentityAuthority {
			a := sz
			a.Cert = []byte("-----BEGIN CERTIFICATE-----")
			a.ID = credit.AuthorityID(a.Cert)
			return a
		}, CodeInvalid},
		{"no divisions", "SZMSP", func() credit.IdentityAuthority {
			a := sz
			a.Divisions = nil
			return a
		}, CodeInvalid},
		{"malformed division", "SZMSP", func() credit.IdentityAuthority {
			a := sz
			a.Divisions = []string{"4403ab"}
			return a
		}, CodeInvalid},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			l, _ := bootstrapped(t)
			if _, err := reg(l, tc.msp, t0.Add(time.Minute), tc.a()); CodeOf(err) != tc.code {
				t.Fatalf("got %v, want code %s", err, tc.code)
			}
			if got := authorities(t, l); len(got) != 0 {
				t.Fatalf("a refused registration stored %+v", got)
			}
		})
	}

	t.Run("refused: unknown field", func(t *testing.T) {
		l, _ := bootstrapped(t)
		_, err := l.tx("SZMSP", t0, func(c Contract, x TxContext) error {
			return c.RegisterAuthority(x, `{"id":"`+sz.ID+`","trusted_everywhere":true}`)
		})
		if CodeOf(err) != CodeInvalid {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("refused: retired region", func(t *testing.T) {
		l, rs := bootstrapped(t)
		retireByVote(t, l, string(rs[0].member.ID), t0.Add(time.Minute), "SZMSP", "GZMSP")
		if _, err := reg(l, "SZMSP", t0.Add(2*time.Minute), sz); CodeOf(err) != CodeDenied {
			t.Fatalf("got %v", err)
		}
	})
}

func mustKey(t *testing.T, l *memLedger, key string) []byte {
	t.Helper()
	v, ok := l.state[key]
	if !ok {
		t.Fatalf("no state key %s", key)
	}
	return v
}

// registered returns a ledger where Shenzhen registered a (at t0+1m).
func registered(t *testing.T) (*memLedger, credit.IdentityAuthority) {
	t.Helper()
	l, _ := bootstrapped(t)
	a := testAuthority(t, "SZ CA", "440300", "4403")
	arg := mustJSON(a)
	if _, err := l.tx("SZMSP", t0.Add(time.Minute), func(c Contract, x TxContext) error { return c.RegisterAuthority(x, arg) }); err != nil {
		t.Fatal(err)
	}
	return l, a
}

func TestRetireAuthority(t *testing.T) {
	retire := func(l *memLedger, msp string, at time.Time, id string) (credit.IdentityAuthority, []memEvent, error) {
		var out credit.IdentityAuthority
		evs, err := l.tx(msp, at, func(c Contract, x TxContext) (e error) { out, e = c.RetireAuthority(x, id); return })
		return out, evs, err
	}
	t.Run("by its region, at the transaction's time, twice returns the first", func(t *testing.T) {
		l, a := registered(t)
		at := t0.Add(time.Hour)
		got, evs, err := retire(l, "SZMSP", at, a.ID)
		if err != nil || got.Status != credit.StatusRetired || got.RetiredAt == nil || !got.RetiredAt.Equal(at) {
			t.Fatalf("retire: %+v, %v", got, err)
		}
		if len(evs) != 1 || evs[0].name != EventAuthorityChanged {
			t.Fatalf("events %+v", evs)
		}
		var p EventPayload
		if err := json.Unmarshal(evs[0].payload, &p); err != nil || p.Authority == nil || p.Authority.RetiredAt == nil {
			t.Fatalf("payload %s (%v)", evs[0].payload, err)
		}
		again, evs, err := retire(l, "SZMSP", at.Add(time.Hour), a.ID)
		if err != nil || !again.RetiredAt.Equal(at) || len(evs) != 0 {
			t.Fatalf("second retire: %+v, %v, %d events", again, err, len(evs))
		}
		// A retry of the registration does not bring it back.
		arg := mustJSON(a)
		if _, err := l.tx("SZMSP", at.Add(2*time.Hour), func(c Contract, x TxContext) error { return c.RegisterAuthority(x, arg) }); err != nil {
			t.Fatal(err)
		}
		if all := authorities(t, l); len(all) != 1 || all[0].Status != credit.StatusRetired || !all[0].RetiredAt.Equal(at) {
			t.Fatalf("after re-register: %+v", all)
		}
	})
	t.Run("by another region: denied", func(t *testing.T) {
		l, a := registered(t)
		if _, _, err := retire(l, "GZMSP", t0.Add(time.Hour), a.ID); CodeOf(err) != CodeDenied {
			t.Fatalf("got %v", err)
		}
		if all := authorities(t, l); all[0].Status != credit.StatusActive {
			t.Fatalf("retired by another region: %+v", all)
		}
	})
	t.Run("unknown: not found", func(t *testing.T) {
		l, _ := registered(t)
		if _, _, err := retire(l, "SZMSP", t0.Add(time.Hour), revID("none")); CodeOf(err) != CodeNotFound {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("dated before the registration: denied", func(t *testing.T) {
		l, a := registered(t)
		if _, _, err := retire(l, "SZMSP", t0, a.ID); CodeOf(err) != CodeDenied {
			t.Fatalf("got %v", err)
		}
	})
}

func TestRevokeCertificate(t *testing.T) {
	revoke := func(l *memLedger, msp string, at time.Time, r credit.CertRevocation) (credit.CertRevocation, []memEvent, error) {
		var out credit.CertRevocation
		arg := mustJSON(r)
		evs, err := l.tx(msp, at, func(c Contract, x TxContext) (e error) { out, e = c.RevokeCertificate(x, arg); return })
		return out, evs, err
	}
	revocations := func(t *testing.T, l *memLedger) []credit.CertRevocation {
		t.Helper()
		var out []credit.CertRevocation
		if _, err := l.tx("ZHMSP", t0.Add(100*time.Hour), func(c Contract, x TxContext) (e error) { out, e = c.GetRevocations(x); return }); err != nil {
			t.Fatal(err)
		}
		return out
	}

	t.Run("by the authority's region, at the transaction's time, twice returns the first", func(t *testing.T) {
		l, a := registered(t)
		at := t0.Add(time.Hour)
		past := t0.Add(-time.Hour)
		// The client's region and time are not taken.
		got, evs, err := revoke(l, "SZMSP", at, credit.CertRevocation{ID: revID("c1"), Authority: a.ID, Region: "440100", RevokedAt: past})
		if err != nil || got.ID != revID("c1") || got.Authority != a.ID || got.Region != "440300" || !got.RevokedAt.Equal(at) {
			t.Fatalf("revoke: %+v, %v", got, err)
		}
		if len(evs) != 1 || evs[0].name != EventCertRevoked {
			t.Fatalf("events %+v", evs)
		}
		var p EventPayload
		if err := json.Unmarshal(evs[0].payload, &p); err != nil || p.Revocation == nil || *p.Revocation != got {
			t.Fatalf("payload %s (%v)", evs[0].payload, err)
		}
		mustKey(t, l, prefixRevocation+revID("c1"))
		again, evs, err := revoke(l, "SZMSP", at.Add(time.Hour), credit.CertRevocation{ID: revID("c1"), Authority: a.ID})
		if err != nil || again != got || len(evs) != 0 {
			t.Fatalf("second revoke: %+v, %v, %d events", again, err, len(evs))
		}
		if all := revocations(t, l); len(all) != 1 || all[0] != got {
			t.Fatalf("revocations %+v", all)
		}
	})

	t.Run("under a retired authority is still recorded", func(t *testing.T) {
		l, a := registered(t)
		if _, err := l.tx("SZMSP", t0.Add(time.Hour), func(c Contract, x TxContext) error { _, e := c.RetireAuthority(x, a.ID); return e }); err != nil {
			t.Fatal(err)
		}
		if _, _, err := revoke(l, "SZMSP", t0.Add(2*time.Hour), credit.CertRevocation{ID: revID("c1"), Authority: a.ID}); err != nil {
			t.Fatal(err)
		}
	})

	for _, tc := range []struct {
		name, msp string
		r         func(a credit.IdentityAuthority) credit.CertRevocation
		at        time.Time
		code      string
	}{
		{"by another region", "GZMSP", func(a credit.IdentityAuthority) credit.CertRevocation {
			return credit.CertRevocation{ID: revID("c1"), Authority: a.ID}
		}, t0.Add(time.Hour), CodeDenied},
		{"another region naming itself", "GZMSP", func(a credit.IdentityAuthority) credit.CertRevocation {
			return credit.CertRevocation{ID: revID("c1"), Authority: a.ID, Region: "440100"}
		}, t0.Add(time.Hour), CodeDenied},
		{"by an identity outside the members", "OTHERMSP", func(a credit.IdentityAuthority) credit.CertRevocation {
			return credit.CertRevocation{ID: revID("c1"), Authority: a.ID}
		}, t0.Add(time.Hour), CodeDenied},
		{"unknown authority", "SZMSP", func(credit.IdentityAuthority) credit.CertRevocation {
			return credit.CertRevocation{ID: revID("c1"), Authority: revID("no such CA")}
		}, t0.Add(time.Hour), CodeNotFound},
		{"no authority", "SZMSP", func(credit.IdentityAuthority) credit.CertRevocation {
			return credit.CertRevocation{ID: revID("c1")}
		}, t0.Add(time.Hour), CodeInvalid},
		{"id not a hash", "SZMSP", func(a credit.IdentityAuthority) credit.CertRevocation {
			// A USCC where the hash belongs: the ledger must not take it.
			return credit.CertRevocation{ID: "91440300MA5G000000", Authority: a.ID}
		}, t0.Add(time.Hour), CodeInvalid},
		{"id too short", "SZMSP", func(a credit.IdentityAuthority) credit.CertRevocation {
			return credit.CertRevocation{ID: revID("c1")[:62], Authority: a.ID}
		}, t0.Add(time.Hour), CodeInvalid},
		{"dated before the authority's registration", "SZMSP", func(a credit.IdentityAuthority) credit.CertRevocation {
			return credit.CertRevocation{ID: revID("c1"), Authority: a.ID}
		}, t0, CodeDenied},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			l, a := registered(t)
			if _, _, err := revoke(l, tc.msp, tc.at, tc.r(a)); CodeOf(err) != tc.code {
				t.Fatalf("got %v, want code %s", err, tc.code)
			}
			if all := revocations(t, l); len(all) != 0 {
				t.Fatalf("a refused revocation stored %+v", all)
			}
		})
	}

	t.Run("another region cannot revoke under its own authority a certificate it did not issue", func(t *testing.T) {
		// The revocation names an authority; a region revokes only under
		// its own, so Guangzhou revoking Shenzhen's certificate has to
		// name Shenzhen's authority and is denied.
		l, a := registered(t)
		gz := testAuthority(t, "GZ CA", "440100", "4401")
		arg := mustJSON(gz)
		if _, err := l.tx("GZMSP", t0.Add(time.Minute), func(c Contract, x TxContext) error { return c.RegisterAuthority(x, arg) }); err != nil {
			t.Fatal(err)
		}
		if _, _, err := revoke(l, "GZMSP", t0.Add(time.Hour), credit.CertRevocation{ID: revID("c1"), Authority: a.ID}); CodeOf(err) != CodeDenied {
			t.Fatalf("got %v", err)
		}
		got, _, err := revoke(l, "GZMSP", t0.Add(time.Hour), credit.CertRevocation{ID: revID("c2"), Authority: gz.ID})
		if err != nil || got.Region != "440100" {
			t.Fatalf("own revocation: %+v, %v", got, err)
		}
	})
}
