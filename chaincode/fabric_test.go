package chaincode

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"sort"
	"testing"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/queryresult"
	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/prdcredit/ccnode/credit"
)

// fakeStub is the part of the peer's chaincode stub that contractapi and
// the adapter use, over a memLedger. Any other method panics (nil embedded
// interface), which would show the adapter reaching for something new.
type fakeStub struct {
	shim.ChaincodeStubInterface
	tx      *memTx
	creator []byte
	fn      string
	args    []string
}

func (s *fakeStub) GetFunctionAndParameters() (string, []string) { return s.fn, s.args }
func (s *fakeStub) GetCreator() ([]byte, error)                  { return s.creator, nil }
func (s *fakeStub) GetTxID() string                              { return s.tx.id }
func (s *fakeStub) GetTxTimestamp() (*timestamppb.Timestamp, error) {
	return timestamppb.New(s.tx.at), nil
}
func (s *fakeStub) GetState(k string) ([]byte, error)    { return s.tx.GetState(k) }
func (s *fakeStub) PutState(k string, v []byte) error    { return s.tx.PutState(k, v) }
func (s *fakeStub) SetEvent(name string, p []byte) error { return s.tx.SetEvent(name, p) }

func (s *fakeStub) GetStateByRange(start, end string) (shim.StateQueryIteratorInterface, error) {
	kvs, _ := s.tx.GetStateRange(start, end)
	return &kvIter{kvs: kvs}, nil
}

// GetHistoryForKey hands history out newest first, as the peer does.
func (s *fakeStub) GetHistoryForKey(k string) (shim.HistoryQueryIteratorInterface, error) {
	h := append([]HistoryEntry(nil), s.tx.l.hist[k]...)
	sort.SliceStable(h, func(i, j int) bool { return h[i].Time.After(h[j].Time) })
	return &histIter{h: h}, nil
}

type kvIter struct{ kvs []KV }

func (i *kvIter) HasNext() bool { return len(i.kvs) > 0 }
func (i *kvIter) Close() error  { return nil }
func (i *kvIter) Next() (*queryresult.KV, error) {
	kv := i.kvs[0]
	i.kvs = i.kvs[1:]
	return &queryresult.KV{Key: kv.Key, Value: kv.Value}, nil
}

type histIter struct{ h []HistoryEntry }

func (i *histIter) HasNext() bool { return len(i.h) > 0 }
func (i *histIter) Close() error  { return nil }
func (i *histIter) Next() (*queryresult.KeyModification, error) {
	e := i.h[0]
	i.h = i.h[1:]
	return &queryresult.KeyModification{TxId: e.TxID, Value: e.Value, Timestamp: timestamppb.New(e.Time), IsDelete: e.IsDelete}, nil
}

// creator is a serialized X.509 identity of mspID, as a peer presents it.
func creator(t *testing.T, mspID string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "node." + mspID},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * 365 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(&msp.SerializedIdentity{Mspid: mspID, IdBytes: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFabricAdapterThroughContractAPI drives the contract the way a peer
// does: function name and string arguments through contractapi's
// reflection, the caller from the creator certificate's MSP id, the time
// from the proposal timestamp, refusals as a message the gateway client
// parses back.
func TestFabricAdapterThroughContractAPI(t *testing.T) {
	cc, err := contractapi.NewChaincode(NewFabricContract())
	if err != nil {
		t.Fatalf("contractapi refuses the contract: %v", err)
	}
	l := newMemLedger()
	creators := map[string][]byte{}
	for _, m := range []string{"SZMSP", "GZMSP", "ZHMSP"} {
		creators[m] = creator(t, m)
	}
	at := t0
	// invoke runs one transaction and commits it if the peer would.
	invoke := func(msp, fn string, args ...string) (payload string, errMsg string, events []memEvent) {
		at = at.Add(time.Second)
		l.n++
		tx := &memTx{l: l, msp: msp, id: fmt.Sprintf("fabtx%04d", l.n), at: at, writes: map[string][]byte{}}
		resp := cc.Invoke(&fakeStub{tx: tx, creator: creators[msp], fn: fn, args: args})
		if resp.Status != shim.OK {
			return "", resp.Message, nil
		}
		_, err := l.run(msp, at, func(c TxContext) error {
			for k, v := range tx.writes {
				c.PutState(k, v)
			}
			for _, e := range tx.events {
				c.SetEvent(e.name, e.payload)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return string(resp.Payload), "", tx.events
	}
	wantCode := func(t *testing.T, msg, code string) {
		t.Helper()
		got, _, ok := ParseError(msg)
		if !ok || got != code {
			t.Fatalf("refusal %q: want code %s", msg, code)
		}
	}
	sz, gz, zh := testRegion(t, "440300", "SZMSP", "4403"), testRegion(t, "440100", "GZMSP", "4401"), testRegion(t, "440400", "ZHMSP", "4404")
	regions := mustJSON([]credit.RegionMember{sz.member, gz.member, zh.member})

	t.Run("bootstrap once", func(t *testing.T) {
		if _, msg, evs := invoke("GZMSP", "Bootstrap", regions, "[]"); msg != "" || len(evs) != 1 || evs[0].name != EventMemberChanged {
			t.Fatalf("bootstrap: %q, events %+v", msg, evs)
		}
		_, msg, _ := invoke("SZMSP", "Bootstrap", regions, "[]")
		wantCode(t, msg, CodeConflict)
		out, msg, _ := invoke("ZHMSP", "GetRegions")
		var got []credit.RegionMember
		if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 3 || msg != "" {
			t.Fatalf("GetRegions = %s, %q (%v)", out, msg, err)
		}
		out, _, _ = invoke("ZHMSP", "GetRegion", "440100")
		var r credit.RegionMember
		if json.Unmarshal([]byte(out), &r) != nil || r.MSPID != "GZMSP" || !r.UpdatedAt.Equal(t0.Add(time.Second)) {
			t.Fatalf("GetRegion = %s", out)
		}
	})

	c := credit.ConsentCommitment{ID: "consent-fab-1", Commitment: make([]byte, 32), Region: sz.member.ID, ValidFrom: t0, ValidUntil: t0.Add(time.Hour)}
	t.Run("consent", func(t *testing.T) {
		_, msg, _ := invoke("GZMSP", "RecordConsent", mustJSON(c))
		wantCode(t, msg, CodeDenied)
		if _, msg, evs := invoke("SZMSP", "RecordConsent", mustJSON(c)); msg != "" || len(evs) != 1 || evs[0].name != EventConsentRecorded {
			t.Fatalf("record: %q %+v", msg, evs)
		}
		out, msg, _ := invoke("SZMSP", "RevokeConsent", c.ID)
		var rev credit.ConsentCommitment
		if json.Unmarshal([]byte(out), &rev) != nil || rev.RevokedAt == nil || !rev.RevokedAt.Equal(at) {
			t.Fatalf("revoke = %s, %q (revocation must carry the proposal time %s)", out, msg, at)
		}
		for _, tc := range []struct {
			at   time.Time
			want credit.ConsentStatus
		}{{rev.RevokedAt.Add(-time.Nanosecond), credit.ConsentActive}, {*rev.RevokedAt, credit.ConsentRevoked}} {
			out, msg, _ := invoke("ZHMSP", "GetConsentAt", c.ID, tc.at.Format(time.RFC3339Nano))
			var got ConsentAt
			if json.Unmarshal([]byte(out), &got) != nil || got.Status != tc.want {
				t.Fatalf("GetConsentAt(%s) = %s, %q; want %s", tc.at, out, msg, tc.want)
			}
		}
		_, msg, _ = invoke("ZHMSP", "GetConsent", "consent-missing")
		wantCode(t, msg, CodeNotFound)
	})

	t.Run("checkpoint", func(t *testing.T) {
		cp := credit.Checkpoint{Region: sz.member.ID, Size: 1, Root: make([]byte, 32)}
		if err := cp.Sign("test", sz.key); err != nil {
			t.Fatal(err)
		}
		out, msg, evs := invoke("SZMSP", "AnchorCheckpoint", mustJSON(cp), "")
		var a credit.AnchoredCheckpoint
		if json.Unmarshal([]byte(out), &a) != nil || a.TxID == "" || len(evs) != 1 || evs[0].name != EventCheckpointAnchored {
			t.Fatalf("anchor = %s, %q, %+v", out, msg, evs)
		}
		_, msg, _ = invoke("GZMSP", "AnchorCheckpoint", mustJSON(cp), "")
		wantCode(t, msg, CodeDenied)
		out, _, _ = invoke("ZHMSP", "GetCheckpointHistory", string(sz.member.ID))
		var hist []credit.AnchoredCheckpoint
		if json.Unmarshal([]byte(out), &hist) != nil || len(hist) != 1 || hist[0].TxID != a.TxID {
			t.Fatalf("history = %s", out)
		}
		if out, _, _ = invoke("ZHMSP", "GetLatestCheckpoint", string(sz.member.ID)); out == "" {
			t.Fatal("no latest checkpoint")
		}
	})

	t.Run("banks", func(t *testing.T) {
		b := credit.BankMember{ID: "bank-gz-1", Name: "GZ Bank", Region: gz.member.ID, PubKey: make([]byte, 32)}
		_, msg, _ := invoke("SZMSP", "RegisterBank", mustJSON(b))
		wantCode(t, msg, CodeDenied)
		if _, msg, _ := invoke("GZMSP", "RegisterBank", mustJSON(b)); msg != "" {
			t.Fatal(msg)
		}
		_, msg, _ = invoke("SZMSP", "RetireBank", string(b.ID))
		wantCode(t, msg, CodeDenied)
		if _, msg, _ := invoke("GZMSP", "RetireBank", string(b.ID)); msg != "" {
			t.Fatal(msg)
		}
		out, _, _ := invoke("SZMSP", "GetBanks")
		var banks []credit.BankMember
		if json.Unmarshal([]byte(out), &banks) != nil || len(banks) != 1 || banks[0].Status != credit.StatusRetired {
			t.Fatalf("banks = %s", out)
		}
		if out, _, _ := invoke("SZMSP", "GetBank", string(b.ID)); out == "" {
			t.Fatal("GetBank empty")
		}
	})

	t.Run("authorities", func(t *testing.T) {
		a := testAuthority(t, "SZ CA", sz.member.ID, "4403")
		foreign := a
		foreign.Region, foreign.Divisions = gz.member.ID, []string{"4403"}
		_, msg, _ := invoke("GZMSP", "RegisterAuthority", mustJSON(foreign))
		wantCode(t, msg, CodeDenied)
		if _, msg, evs := invoke("SZMSP", "RegisterAuthority", mustJSON(a)); msg != "" || len(evs) != 1 || evs[0].name != EventAuthorityChanged {
			t.Fatalf("register: %q %+v", msg, evs)
		}
		regAt := at
		out, msg, _ := invoke("ZHMSP", "GetAuthorities")
		var as []credit.IdentityAuthority
		if json.Unmarshal([]byte(out), &as) != nil || len(as) != 1 || !as[0].RegisteredAt.Equal(regAt) || as[0].Status != credit.StatusActive {
			t.Fatalf("GetAuthorities = %s, %q (registration must carry the proposal time %s)", out, msg, regAt)
		}
		r := credit.CertRevocation{ID: revID("fab-cert"), Authority: a.ID}
		_, msg, _ = invoke("GZMSP", "RevokeCertificate", mustJSON(r))
		wantCode(t, msg, CodeDenied)
		out, msg, evs := invoke("SZMSP", "RevokeCertificate", mustJSON(r))
		var rev credit.CertRevocation
		if json.Unmarshal([]byte(out), &rev) != nil || !rev.RevokedAt.Equal(at) || len(evs) != 1 || evs[0].name != EventCertRevoked {
			t.Fatalf("revoke = %s, %q, %+v", out, msg, evs)
		}
		out, _, _ = invoke("ZHMSP", "GetRevocations")
		var revs []credit.CertRevocation
		if json.Unmarshal([]byte(out), &revs) != nil || len(revs) != 1 || revs[0] != rev {
			t.Fatalf("GetRevocations = %s", out)
		}
		_, msg, _ = invoke("GZMSP", "RetireAuthority", a.ID)
		wantCode(t, msg, CodeDenied)
		out, msg, _ = invoke("SZMSP", "RetireAuthority", a.ID)
		var ret credit.IdentityAuthority
		if json.Unmarshal([]byte(out), &ret) != nil || ret.RetiredAt == nil || !ret.RetiredAt.Equal(at) {
			t.Fatalf("retire = %s, %q", out, msg)
		}
	})

	t.Run("metadata names the routed surface", func(t *testing.T) {
		out, msg, _ := invoke("SZMSP", "org.hyperledger.fabric:GetMetadata")
		var md struct {
			Contracts map[string]struct {
				Transactions []struct {
					Name       string
					Parameters []struct{ Name string }
				}
			}
		}
		if err := json.Unmarshal([]byte(out), &md); err != nil {
			t.Fatalf("metadata %q: %v", msg, err)
		}
		// The table every backend routes by and the transactions Fabric
		// serves must be the same set, with the same arguments.
		params := map[string]int{}
		for _, tx := range md.Contracts["ccnode"].Transactions {
			params[tx.Name] = len(tx.Parameters)
		}
		for _, f := range Funcs() {
			n, ok := params[f.Name]
			switch {
			case !ok:
				t.Errorf("transaction %s missing from the contract's metadata", f.Name)
			case n != f.Args:
				t.Errorf("transaction %s takes %d arguments on Fabric, %d in Funcs", f.Name, n, f.Args)
			}
			delete(params, f.Name)
		}
		for name := range params {
			t.Errorf("Fabric transaction %s is not in Funcs: no backend routes it", name)
		}
	})
}
