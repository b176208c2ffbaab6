package fabric

import (
	"errors"
	"testing"

	"github.com/prdcredit/ccnode/chaincode"
	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// FuzzDecodeLedgerRecords: contract results are bytes from a peer. Every
// record type the client decodes must either decode or fail as
// ErrUnavailable (the ledger gave no usable answer), never panic.
func FuzzDecodeLedgerRecords(f *testing.F) {
	f.Add([]byte(`{"id":"440300","msp_id":"SZMSP","peer_id":"12D3","pub_key":"AAE=","status":"active","divisions":["4403"],"addrs":["/ip4/127.0.0.1/tcp/1"]}`))
	f.Add([]byte(`{"id":"bank-a","region":"440300","pub_key":"AAE=","status":"retired","updated_at":"2026-11-26T08:00:00Z"}`))
	f.Add([]byte(`{"id":"c1","commitment":"AAE=","region":"440300","valid_from":"2026-01-01T00:00:00Z","valid_until":"2027-01-01T00:00:00Z","status":"revoked","revoked_at":"2026-11-26T08:00:00Z"}`))
	f.Add([]byte(`[{"region":"440300","size":3,"root":"AAE=","sig":"AAE=","tx_id":"t1"}]`))
	f.Add([]byte(`{"size":-1}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(err error) {
			if err != nil && !errors.Is(err, network.ErrUnavailable) {
				t.Fatalf("decode error %v is not ErrUnavailable", err)
			}
		}
		_, err := decode[credit.RegionMember]("Region", b)
		check(err)
		_, err = decode[credit.BankMember]("Bank", b)
		check(err)
		_, err = decode[credit.ConsentCommitment]("Consent", b)
		check(err)
		_, err = decode[credit.AnchoredCheckpoint]("LatestCheckpoint", b)
		check(err)
		_, err = decode[[]credit.AnchoredCheckpoint]("CheckpointHistory", b)
		check(err)
		_, err = decode[[]credit.RegionMember]("Regions", b)
		check(err)
		_, err = decode[[]credit.BankMember]("Banks", b)
		check(err)
		_, err = decode[chaincode.ConsentAt]("ConsentAt", b)
		check(err)
	})
}
