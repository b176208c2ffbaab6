package chaincode

import "time"

// TxContext is what the contract needs from the ledger it runs on: the
// caller's MSP id, the transaction's id and timestamp, key-value state with
// range reads and key history, and one event per transaction. The Fabric
// adapter implements it over the chaincode stub; the embedded ledger
// implements it over its Badger state. Keeping the contract behind this
// seam is what lets both backends run the same rules.
type TxContext interface {
	MSPID() (string, error)
	TxID() string
	// TxTime is the transaction's timestamp: the only clock the contract
	// may read, so every endorser computes the same result.
	TxTime() (time.Time, error)
	GetState(key string) ([]byte, error)
	PutState(key string, value []byte) error
	// GetStateRange returns the keys in [start, end) in key order.
	GetStateRange(start, end string) ([]KV, error)
	// History returns every committed value of key, oldest first.
	History(key string) ([]HistoryEntry, error)
	// SetEvent sets the transaction's event; Fabric keeps one per
	// transaction, so the contract sets at most one.
	SetEvent(name string, payload []byte) error
}

// KV is one key and its value.
type KV struct {
	Key   string
	Value []byte
}

// HistoryEntry is one committed version of a key.
type HistoryEntry struct {
	TxID     string
	Time     time.Time
	Value    []byte
	IsDelete bool
}
