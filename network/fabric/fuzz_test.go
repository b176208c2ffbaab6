package fabric

import (
	"errors"
	"strings"
	"testing"

	"github.com/hyperledger/fabric-gateway/pkg/client"

	"github.com/prdcredit/ccnode/network"
)

// Event payloads come from the channel (another region's transaction):
// mapEvent must never panic and must either fail with errEvent or return
// an event whose one pointer field matches its kind.
func FuzzMapEvent(f *testing.F) {
	f.Add("member_changed", []byte(`{"region":{"id":"SZ","updated_at":"2026-11-26T08:00:00Z"}}`))
	f.Add("member_changed", []byte(`{"bank":{"id":"B1"}}`))
	f.Add("consent_revoked", []byte(`{"consent":{"id":"c1","revoked_at":"2026-11-26T08:00:00Z"}}`))
	f.Add("checkpoint_anchored", []byte(`{"checkpoint":{"region":"SZ","size":3,"root":"AAE="}}`))
	f.Add("authority_changed", []byte(`{"authority":{"id":"ab","registered_at":"2026-11-26T08:00:00Z","retired_at":"2026-11-27T08:00:00Z"}}`))
	f.Add("certificate_revoked", []byte(`{"revocation":{"id":"cd","revoked_at":"2026-11-26T08:00:00Z"}}`))
	f.Add("certificate_revoked", []byte(`{"authority":{"id":"ab"}}`))
	f.Add("consent_recorded", []byte(`{"time":"x"}`))
	f.Add("x", []byte(`null`))
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		ev, err := mapEvent(&client.ChaincodeEvent{BlockNumber: 1, TransactionID: "t", EventName: name, Payload: payload})
		if err != nil {
			if !errors.Is(err, errEvent) {
				t.Fatalf("error %v does not wrap errEvent", err)
			}
			return
		}
		set := 0
		for _, p := range []bool{ev.Region != nil, ev.Bank != nil, ev.Consent != nil, ev.Checkpoint != nil, ev.Authority != nil, ev.Revocation != nil} {
			if p {
				set++
			}
		}
		if set != 1 {
			t.Fatalf("%d payload fields set for %q", set, name)
		}
		switch ev.Kind {
		case network.EventMemberChanged:
			if ev.Region == nil && ev.Bank == nil {
				t.Fatal("member_changed without a member")
			}
		case network.EventConsentRecorded, network.EventConsentRevoked:
			if ev.Consent == nil {
				t.Fatal("consent event without consent")
			}
		case network.EventCheckpointAnchored:
			if ev.Checkpoint == nil {
				t.Fatal("checkpoint event without checkpoint")
			}
		case network.EventAuthorityChanged:
			if ev.Authority == nil {
				t.Fatal("authority event without authority")
			}
		case network.EventCertRevoked:
			if ev.Revocation == nil {
				t.Fatal("revocation event without revocation")
			}
		default:
			t.Fatalf("unknown kind %q accepted", ev.Kind)
		}
	})
}

// Peer messages are outside text: parsing must not panic, and a match
// must be one of the four kinds with a detail taken from the message.
func FuzzParseContractError(f *testing.F) {
	f.Add("chaincode response 500, ccnode:denied: wrong MSP")
	f.Add("ccnode:not_found: x\ny")
	f.Add("ccnode:ccnode:conflict:")
	f.Add("ccnode:")
	f.Fuzz(func(t *testing.T, msg string) {
		kind, detail, ok := parseContractError(msg)
		if !ok {
			if kind != nil || detail != "" {
				t.Fatal("no match but a kind or detail")
			}
			return
		}
		switch kind {
		case network.ErrNotFound, network.ErrDenied, network.ErrConflict, network.ErrInvalid:
		default:
			t.Fatalf("kind %v", kind)
		}
		if !strings.Contains(msg, detail) || strings.Contains(detail, "\n") {
			t.Fatalf("detail %q not a single line of %q", detail, msg)
		}
	})
}
