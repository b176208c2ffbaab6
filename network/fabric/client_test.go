package fabric

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network"
)

func validConfig() Config {
	return Config{
		Endpoint: "127.0.0.1:7051", TLSCACertPath: "ca.pem", MSPID: "SZMSP",
		CertPath: "cert.pem", KeyPath: "key.pem", Channel: "prdcredit", Chaincode: "ccnode",
	}.WithDefaults()
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		field string
		edit  func(*Config)
	}{
		{"", func(*Config) {}},
		{"endpoint", func(c *Config) { c.Endpoint = "" }},
		{"tls_ca_cert", func(c *Config) { c.TLSCACertPath = "" }},
		{"msp_id", func(c *Config) { c.MSPID = "" }},
		{"cert_path", func(c *Config) { c.CertPath = "" }},
		{"key_path", func(c *Config) { c.KeyPath = "" }},
		{"channel", func(c *Config) { c.Channel = "" }},
		{"chaincode", func(c *Config) { c.Chaincode = "" }},
		{"evaluate_timeout", func(c *Config) { c.EvaluateTimeout = -time.Second }},
		{"endorse_timeout", func(c *Config) { c.EndorseTimeout = -1 }},
		{"submit_timeout", func(c *Config) { c.SubmitTimeout = -1 }},
		{"commit_status_timeout", func(c *Config) { c.CommitStatusTimeout = -1 }},
		{"max_attempts", func(c *Config) { c.MaxAttempts = -2 }},
	}
	for _, tt := range tests {
		t.Run("field="+tt.field, func(t *testing.T) {
			c := validConfig()
			tt.edit(&c)
			err := c.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("Validate() = %v, want a ConfigError naming %s", err, tt.field)
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("%v does not wrap ErrConfig", err)
			}
		})
	}
}

func TestConfigWithDefaultsKeepsSetValues(t *testing.T) {
	c := Config{EvaluateTimeout: time.Second, MaxAttempts: 2}.WithDefaults()
	if c.EvaluateTimeout != time.Second || c.MaxAttempts != 2 {
		t.Fatalf("set values overwritten: %+v", c)
	}
	if c.EndorseTimeout != DefaultEndorseTimeout || c.CommitStatusTimeout != DefaultCommitStatusTimeout {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("gw.yaml", `endpoint: 127.0.0.1:7051
tls_ca_cert: tls/ca.pem
msp_id: SZMSP
cert_path: /abs/cert.pem
key_path: keys/key.pem
channel: prdcredit
chaincode: ccnode
endorse_timeout: 3s
`)
	c, err := LoadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.TLSCACertPath != filepath.Join(dir, "tls/ca.pem") || c.KeyPath != filepath.Join(dir, "keys/key.pem") || c.CertPath != "/abs/cert.pem" {
		t.Fatalf("paths not resolved from the file's folder: %+v", c)
	}
	if c.EndorseTimeout != 3*time.Second || c.SubmitTimeout != DefaultSubmitTimeout {
		t.Fatalf("timeouts: %+v", c)
	}

	tests := []struct{ name, body, field string }{
		{"unknown key", "endpont: x\n", ""},
		{"missing channel", "endpoint: a:1\ntls_ca_cert: c\nmsp_id: M\ncert_path: c\nkey_path: k\nchaincode: cc\n", "channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(write(strings.ReplaceAll(tt.name, " ", "_")+".yaml", tt.body))
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("LoadConfig = %v, want ErrConfig", err)
			}
			var ce *ConfigError
			if tt.field != "" && (!errors.As(err, &ce) || ce.Field != tt.field) {
				t.Fatalf("LoadConfig = %v, want field %s", err, tt.field)
			}
		})
	}
}

func TestParseContractError(t *testing.T) {
	tests := []struct {
		msg    string
		kind   error
		detail string
	}{
		{"ccnode:not_found: consent c1", network.ErrNotFound, "consent c1"},
		{"chaincode response 500, ccnode:denied: GZMSP may not change SZ", network.ErrDenied, "GZMSP may not change SZ"},
		{"ccnode:conflict: checkpoint forks the log\nmore", network.ErrConflict, "checkpoint forks the log"},
		{"ccnode:invalid: bad json", network.ErrInvalid, "bad json"},
		{"see ccnode:docs then ccnode:denied: x", network.ErrDenied, "x"},
		{"ccnode:weird: x", nil, ""},
		{"no prefix at all", nil, ""},
		{"ccnode:denied", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			kind, detail, ok := parseContractError(tt.msg)
			if ok != (tt.kind != nil) || kind != tt.kind || detail != tt.detail {
				t.Fatalf("parse(%q) = %v, %q, %v; want %v, %q", tt.msg, kind, detail, ok, tt.kind, tt.detail)
			}
		})
	}
}

func TestMapError(t *testing.T) {
	withDetail := func(code codes.Code, peerMsg string) error {
		st, err := status.New(code, "failed to endorse transaction, see attached details for more info").
			WithDetails(&gateway.ErrorDetail{Address: "127.0.0.1:7051", MspId: "GZMSP", Message: peerMsg})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	tests := []struct {
		name string
		err  error
		kind error
		msg  string
	}{
		{"denied in detail", withDetail(codes.Aborted, "chaincode response 500, ccnode:denied: wrong MSP"), network.ErrDenied, "wrong MSP"},
		{"not found in status message", status.Error(codes.Unknown, "evaluate call to endorser returned error: chaincode response 500, ccnode:not_found: region XX"), network.ErrNotFound, "region XX"},
		{"unavailable", status.Error(codes.Unavailable, "connection refused"), network.ErrUnavailable, ""},
		{"deadline", context.DeadlineExceeded, network.ErrUnavailable, ""},
		{"policy failure at commit", &client.CommitError{TransactionID: "t", Code: peer.TxValidationCode_ENDORSEMENT_POLICY_FAILURE}, network.ErrDenied, ""},
		{"duplicate at commit", &client.CommitError{TransactionID: "t", Code: peer.TxValidationCode_DUPLICATE_TXID}, network.ErrConflict, ""},
		{"no detail, no prefix", withDetail(codes.Aborted, "chaincode response 500, panic"), network.ErrUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mapError("Op", tt.err)
			var ne *network.Error
			if !errors.As(err, &ne) || !errors.Is(err, tt.kind) || ne.Op != "Op" {
				t.Fatalf("mapError = %v, want *network.Error of kind %v", err, tt.kind)
			}
			if tt.msg != "" && ne.Msg != tt.msg {
				t.Fatalf("Msg = %q, want the contract's words %q", ne.Msg, tt.msg)
			}
		})
	}
}

func TestMapEvent(t *testing.T) {
	at := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	later := at.Add(time.Hour)
	payload := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		event   string
		payload []byte
		wantErr bool
		time    time.Time
		check   func(network.Event) bool
	}{
		{"region", "member_changed", payload(map[string]any{"region": credit.RegionMember{ID: "SZ", UpdatedAt: at}}), false, at,
			func(e network.Event) bool { return e.Region != nil && e.Region.ID == "SZ" && e.Bank == nil }},
		{"bank", "member_changed", payload(map[string]any{"bank": credit.BankMember{ID: "B1", UpdatedAt: at}}), false, at,
			func(e network.Event) bool { return e.Bank != nil && e.Bank.ID == "B1" }},
		{"consent recorded", "consent_recorded", payload(map[string]any{"consent": credit.ConsentCommitment{ID: "c1", RecordedAt: at}}), false, at,
			func(e network.Event) bool { return e.Consent != nil && e.Consent.ID == "c1" }},
		{"consent revoked uses revocation time", "consent_revoked", payload(map[string]any{"consent": credit.ConsentCommitment{ID: "c1", RecordedAt: at, RevokedAt: &later}}), false, later,
			func(e network.Event) bool { return e.Consent != nil }},
		{"checkpoint", "checkpoint_anchored", payload(map[string]any{"checkpoint": credit.AnchoredCheckpoint{Checkpoint: credit.Checkpoint{Region: "SZ", Size: 3}, AnchoredAt: at}}), false, at,
			func(e network.Event) bool { return e.Checkpoint != nil && e.Checkpoint.Size == 3 }},
		{"explicit time wins", "checkpoint_anchored", payload(map[string]any{"time": later, "checkpoint": credit.AnchoredCheckpoint{AnchoredAt: at}}), false, later,
			func(e network.Event) bool { return e.Checkpoint != nil }},
		{"authority registered", "authority_changed", payload(map[string]any{"authority": credit.IdentityAuthority{ID: "a1", RegisteredAt: at}}), false, at,
			func(e network.Event) bool { return e.Authority != nil && e.Authority.ID == "a1" && e.Revocation == nil }},
		{"authority retired uses retirement time", "authority_changed", payload(map[string]any{"authority": credit.IdentityAuthority{ID: "a1", RegisteredAt: at, RetiredAt: &later}}), false, later,
			func(e network.Event) bool { return e.Authority != nil && e.Authority.RetiredAt != nil }},
		{"certificate revoked", "certificate_revoked", payload(map[string]any{"revocation": credit.CertRevocation{ID: "r1", Authority: "a1", RevokedAt: at}}), false, at,
			func(e network.Event) bool {
				return e.Revocation != nil && e.Revocation.ID == "r1" && e.Authority == nil
			}},
		{"missing authority", "authority_changed", payload(map[string]any{"revocation": credit.CertRevocation{}}), true, time.Time{}, nil},
		{"missing revocation", "certificate_revoked", payload(map[string]any{"authority": credit.IdentityAuthority{}}), true, time.Time{}, nil},
		{"both region and bank", "member_changed", payload(map[string]any{"region": credit.RegionMember{}, "bank": credit.BankMember{}}), true, time.Time{}, nil},
		{"missing consent", "consent_recorded", payload(map[string]any{"bank": credit.BankMember{}}), true, time.Time{}, nil},
		{"unknown name", "something_else", payload(map[string]any{}), true, time.Time{}, nil},
		{"not json", "consent_recorded", []byte("{"), true, time.Time{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := mapEvent(&client.ChaincodeEvent{BlockNumber: 9, TransactionID: "tx9", EventName: tt.event, Payload: tt.payload})
			if tt.wantErr {
				if !errors.Is(err, errEvent) {
					t.Fatalf("mapEvent = %v, want errEvent", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.Position != (network.Position{Block: 9, TxID: "tx9"}) || string(ev.Kind) != tt.event || !ev.Time.Equal(tt.time) || !tt.check(ev) {
				t.Fatalf("mapEvent = %+v", ev)
			}
		})
	}
}

// An endpoint nobody listens on fails fast with ErrUnavailable, not a hang.
func TestUnreachableIsUnavailable(t *testing.T) {
	pki := newTestPKI(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	l, err := Dial(context.Background(), Config{
		Endpoint: addr, TLSCACertPath: pki.caPath, MSPID: "SZMSP", CertPath: pki.certPath, KeyPath: pki.keyPath,
		Channel: "prdcredit", Chaincode: "ccnode", MaxAttempts: 2,
	}, testkit.LoggerAt(t, slog.LevelDebug))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The deadline only keeps a regression from hanging the suite.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"evaluate", func() error { _, err := l.Regions(ctx); return err }},
		{"submit", func() error { _, err := l.RevokeConsent(ctx, "c1"); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, network.ErrUnavailable) {
				t.Fatalf("got %v, want ErrUnavailable", err)
			}
			if ctx.Err() != nil {
				t.Fatal("the call waited for the test's deadline instead of failing")
			}
		})
	}
}

func TestDialRefusesBadFiles(t *testing.T) {
	pki, other := newTestPKI(t), newTestPKI(t)
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	if err := os.WriteFile(notPEM, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		field string
		edit  func(*Config)
	}{
		{"tls_ca_cert", func(c *Config) { c.TLSCACertPath = notPEM }},
		{"cert_path", func(c *Config) { c.CertPath = notPEM }},
		{"key_path", func(c *Config) { c.KeyPath = notPEM }},
		{"key_path", func(c *Config) { c.KeyPath = filepath.Join(t.TempDir(), "missing") }},
		{"key_path", func(c *Config) { c.KeyPath = other.keyPath }}, // another identity's key
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			c := Config{Endpoint: "127.0.0.1:1", TLSCACertPath: pki.caPath, MSPID: "SZMSP", CertPath: pki.certPath,
				KeyPath: pki.keyPath, Channel: "ch", Chaincode: "cc"}
			tt.edit(&c)
			_, err := Dial(context.Background(), c, nil)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("Dial = %v, want ConfigError on %s", err, tt.field)
			}
		})
	}
}

// The documented sample stays loadable and says what the defaults are.
func TestSampleConfig(t *testing.T) {
	c, err := LoadConfig(filepath.Join("testdata", "gateway.sample.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Endpoint: "127.0.0.1:7051", Endpoints: []string{"127.0.0.1:7151"},
		MSPID: "SZMSP", Channel: "prdcredit", Chaincode: "ccnode",
		TLSCACertPath:     filepath.Join("testdata", "crypto/sz/tlsca.pem"),
		TLSClientCertPath: filepath.Join("testdata", "crypto/sz/client.crt"),
		TLSClientKeyPath:  filepath.Join("testdata", "crypto/sz/client.key"),
		CertPath:          filepath.Join("testdata", "crypto/sz/cert.pem"),
		KeyPath:           filepath.Join("testdata", "crypto/sz/key.pem"),
	}.WithDefaults()
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("sample config\n got %+v\nwant %+v", c, want)
	}
}

// The bootstrap's one chaincode event lists every member it wrote: it maps
// to one member event each, at the transaction's Position, timed by the
// record, as the embedded backend maps the same payload.
func TestMapEventsBootstrapListsEveryMember(t *testing.T) {
	at := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	sz := credit.RegionMember{ID: "440300", UpdatedAt: at}
	gz := credit.RegionMember{ID: "440100", UpdatedAt: at}
	bank := credit.BankMember{ID: "bank-a", UpdatedAt: at}
	b, err := json.Marshal(map[string]any{"region": sz, "regions": []credit.RegionMember{sz, gz}, "banks": []credit.BankMember{bank}})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := mapEvents(&client.ChaincodeEvent{BlockNumber: 3, TransactionID: "tx3", EventName: "member_changed", Payload: b})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		if ev.Position != (network.Position{Block: 3, TxID: "tx3"}) || ev.Kind != network.EventMemberChanged || !ev.Time.Equal(at) {
			t.Fatalf("event %+v", ev)
		}
		switch {
		case ev.Region != nil && ev.Bank == nil:
			got = append(got, string(ev.Region.ID))
		case ev.Bank != nil && ev.Region == nil:
			got = append(got, string(ev.Bank.ID))
		default:
			t.Fatalf("event with %v region, %v bank", ev.Region, ev.Bank)
		}
	}
	if strings.Join(got, ",") != "440300,440100,bank-a" {
		t.Fatalf("members %v, want 440300,440100,bank-a", got)
	}
}
