package chaincode

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// FabricContract exposes Contract as Fabric transactions. Every argument
// and result is a string (JSON of the credit types): contractapi would
// otherwise derive a JSON schema from the Go types, and byte slices and
// times do not survive that round trip unchanged.
type FabricContract struct {
	contractapi.Contract
	rules Contract
}

// NewFabricContract returns the contract named "ccnode" for contractapi.
func NewFabricContract() *FabricContract {
	c := &FabricContract{}
	c.Name = "ccnode"
	c.Info.Title = "ccnode consortium contract"
	c.Info.Version = "1.0.0"
	return c
}

func asJSON(v any, err error) (string, error) {
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Bootstrap: see Contract.Bootstrap.
func (f *FabricContract) Bootstrap(ctx contractapi.TransactionContextInterface, regionsJSON, banksJSON string) error {
	return f.rules.Bootstrap(fabricCtx{ctx}, regionsJSON, banksJSON)
}

// GetRegions: see Contract.GetRegions.
func (f *FabricContract) GetRegions(ctx contractapi.TransactionContextInterface) (string, error) {
	return asJSON(f.rules.GetRegions(fabricCtx{ctx}))
}

// GetRegion: see Contract.GetRegion.
func (f *FabricContract) GetRegion(ctx contractapi.TransactionContextInterface, id string) (string, error) {
	return asJSON(f.rules.GetRegion(fabricCtx{ctx}, id))
}

// UpdateRegion: see Contract.UpdateRegion.
func (f *FabricContract) UpdateRegion(ctx contractapi.TransactionContextInterface, regionJSON string) error {
	return f.rules.UpdateRegion(fabricCtx{ctx}, regionJSON)
}

// ProposeRegion: see Contract.ProposeRegion.
func (f *FabricContract) ProposeRegion(ctx contractapi.TransactionContextInterface, memberJSON string) (string, error) {
	return asJSON(f.rules.ProposeRegion(fabricCtx{ctx}, memberJSON))
}

// ApproveRegion: see Contract.ApproveRegion.
func (f *FabricContract) ApproveRegion(ctx contractapi.TransactionContextInterface, id string) (string, error) {
	return asJSON(f.rules.ApproveRegion(fabricCtx{ctx}, id))
}

// RetireRegion: see Contract.RetireRegion.
func (f *FabricContract) RetireRegion(ctx contractapi.TransactionContextInterface, id string) (string, error) {
	return asJSON(f.rules.RetireRegion(fabricCtx{ctx}, id))
}

// GetRegionProposals: see Contract.GetRegionProposals.
func (f *FabricContract) GetRegionProposals(ctx contractapi.TransactionContextInterface) (string, error) {
	return asJSON(f.rules.GetRegionProposals(fabricCtx{ctx}))
}

// GetBanks: see Contract.GetBanks.
func (f *FabricContract) GetBanks(ctx contractapi.TransactionContextInterface) (string, error) {
	return asJSON(f.rules.GetBanks(fabricCtx{ctx}))
}

// GetBank: see Contract.GetBank.
func (f *FabricContract) GetBank(ctx contractapi.TransactionContextInterface, id string) (string, error) {
	return asJSON(f.rules.GetBank(fabricCtx{ctx}, id))
}

// RegisterBank: see Contract.RegisterBank.
func (f *FabricContract) RegisterBank(ctx contractapi.TransactionContextInterface, bankJSON string) error {
	return f.rules.RegisterBank(fabricCtx{ctx}, bankJSON)
}

// RetireBank: see Contract.RetireBank.
func (f *FabricContract) RetireBank(ctx contractapi.TransactionContextInterface, id string) error {
	return f.rules.RetireBank(fabricCtx{ctx}, id)
}

// RecordConsent: see Contract.RecordConsent.
func (f *FabricContract) RecordConsent(ctx contractapi.TransactionContextInterface, commitmentJSON string) error {
	return f.rules.RecordConsent(fabricCtx{ctx}, commitmentJSON)
}

// RevokeConsent: see Contract.RevokeConsent.
func (f *FabricContract) RevokeConsent(ctx contractapi.TransactionContextInterface, id string) (string, error) {
	return asJSON(f.rules.RevokeConsent(fabricCtx{ctx}, id))
}

// GetConsent: see Contract.GetConsent.
func (f *FabricContract) GetConsent(ctx contractapi.TransactionContextInterface, id string) (string, error) {
	return asJSON(f.rules.GetConsent(fabricCtx{ctx}, id))
}

// GetConsentAt: see Contract.GetConsentAt.
func (f *FabricContract) GetConsentAt(ctx contractapi.TransactionContextInterface, id, at string) (string, error) {
	return asJSON(f.rules.GetConsentAt(fabricCtx{ctx}, id, at))
}

// AnchorCheckpoint: see Contract.AnchorCheckpoint.
func (f *FabricContract) AnchorCheckpoint(ctx contractapi.TransactionContextInterface, checkpointJSON, proofJSON string) (string, error) {
	return asJSON(f.rules.AnchorCheckpoint(fabricCtx{ctx}, checkpointJSON, proofJSON))
}

// GetLatestCheckpoint: see Contract.GetLatestCheckpoint.
func (f *FabricContract) GetLatestCheckpoint(ctx contractapi.TransactionContextInterface, region string) (string, error) {
	return asJSON(f.rules.GetLatestCheckpoint(fabricCtx{ctx}, region))
}

// GetCheckpointHistory: see Contract.GetCheckpointHistory.
func (f *FabricContract) GetCheckpointHistory(ctx contractapi.TransactionContextInterface, region string) (string, error) {
	return asJSON(f.rules.GetCheckpointHistory(fabricCtx{ctx}, region))
}

// RegisterAuthority: see Contract.RegisterAuthority.
func (f *FabricContract) RegisterAuthority(ctx contractapi.TransactionContextInterface, authorityJSON string) error {
	return f.rules.RegisterAuthority(fabricCtx{ctx}, authorityJSON)
}

// RetireAuthority: see Contract.RetireAuthority.
func (f *FabricContract) RetireAuthority(ctx contractapi.TransactionContextInterface, id string) (string, error) {
	return asJSON(f.rules.RetireAuthority(fabricCtx{ctx}, id))
}

// GetAuthorities: see Contract.GetAuthorities.
func (f *FabricContract) GetAuthorities(ctx contractapi.TransactionContextInterface) (string, error) {
	return asJSON(f.rules.GetAuthorities(fabricCtx{ctx}))
}

// RevokeCertificate: see Contract.RevokeCertificate.
func (f *FabricContract) RevokeCertificate(ctx contractapi.TransactionContextInterface, revocationJSON string) (string, error) {
	return asJSON(f.rules.RevokeCertificate(fabricCtx{ctx}, revocationJSON))
}

// GetRevocations: see Contract.GetRevocations.
func (f *FabricContract) GetRevocations(ctx contractapi.TransactionContextInterface) (string, error) {
	return asJSON(f.rules.GetRevocations(fabricCtx{ctx}))
}

// fabricCtx adapts contractapi's transaction context to TxContext.
type fabricCtx struct {
	ctx contractapi.TransactionContextInterface
}

func (f fabricCtx) MSPID() (string, error) { return f.ctx.GetClientIdentity().GetMSPID() }
func (f fabricCtx) TxID() string           { return f.ctx.GetStub().GetTxID() }

func (f fabricCtx) TxTime() (time.Time, error) {
	ts, err := f.ctx.GetStub().GetTxTimestamp()
	if err != nil {
		return time.Time{}, fmt.Errorf("transaction timestamp: %w", err)
	}
	return ts.AsTime(), nil
}

func (f fabricCtx) GetState(key string) ([]byte, error) { return f.ctx.GetStub().GetState(key) }
func (f fabricCtx) PutState(key string, v []byte) error { return f.ctx.GetStub().PutState(key, v) }
func (f fabricCtx) SetEvent(name string, p []byte) error {
	return f.ctx.GetStub().SetEvent(name, p)
}

func (f fabricCtx) GetStateRange(start, end string) ([]KV, error) {
	it, err := f.ctx.GetStub().GetStateByRange(start, end)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []KV
	for it.HasNext() {
		kv, err := it.Next()
		if err != nil {
			return nil, err
		}
		out = append(out, KV{Key: kv.Key, Value: kv.Value})
	}
	return out, nil
}

func (f fabricCtx) History(key string) ([]HistoryEntry, error) {
	it, err := f.ctx.GetStub().GetHistoryForKey(key)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []HistoryEntry
	for it.HasNext() {
		m, err := it.Next()
		if err != nil {
			return nil, err
		}
		out = append(out, HistoryEntry{TxID: m.TxId, Time: m.Timestamp.AsTime(), Value: m.Value, IsDelete: m.IsDelete})
	}
	// Fabric returns newest first; the contract wants oldest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
