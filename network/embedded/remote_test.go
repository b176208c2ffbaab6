package embedded

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/ledgertest"
)

// remoteHarness is harness with every client reaching s over HTTP, as the
// nodes of other processes do.
func remoteHarness(t *testing.T, s *Server) ledgertest.Harness {
	h := harness(t, s)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	for i := range h.Regions {
		r := &h.Regions[i]
		rc, err := Dial(srv.URL, r.Ledger.Identity(), r.Key)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rc.Close() })
		r.Ledger = rc
	}
	out := h.Outsider.(*Client)
	rc, err := Dial(srv.URL, out.msp, out.key)
	if err != nil {
		t.Fatal(err)
	}
	h.Outsider = rc
	return h
}

// The served ledger passes the same conformance suite as the in-process
// client and the Fabric backend.
func TestRemoteConformance(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ledgertest.Run(t, remoteHarness(t, s))
	if err := s.VerifyChain(); err != nil {
		t.Fatalf("chain after the suite: %v", err)
	}
}

// A remote caller cannot act as another identity: the hosting server
// authenticates every transaction by its signature.
func TestRemoteWrongKeyDenied(t *testing.T) {
	s, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := remoteHarness(t, s)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	rc, err := Dial(srv.URL, h.Regions[0].Ledger.Identity(), stranger)
	if err != nil {
		t.Fatal(err)
	}
	err = rc.Bootstrap(t.Context(), nil, nil)
	if !errors.Is(err, network.ErrDenied) {
		t.Fatalf("bootstrap signed by a stranger's key for %s: %v, want ErrDenied", h.Regions[0].Ledger.Identity(), err)
	}
	if _, err := Dial("ftp://x", "SZMSP", stranger); !errors.Is(err, network.ErrInvalid) {
		t.Fatalf("dial of a non-HTTP address: %v", err)
	}
}
