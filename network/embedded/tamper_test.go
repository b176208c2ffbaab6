package embedded

import (
	"encoding/json"

	"github.com/dgraph-io/badger/v4"
)

// Changes behind the ledger's back, for tests of VerifyChain.

// TamperStateForTest overwrites a contract state key behind the ledger's
// back, for tests of VerifyChain.
func (s *Server) TamperStateForTest(key string, value []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyState+key), value) })
}

// TamperHistoryForTest overwrites the value in block's history entry of
// key behind the ledger's back, for tests of VerifyChain.
func (s *Server) TamperHistoryForTest(key string, block uint64, value []byte) error {
	return s.db.Update(func(txn *badger.Txn) error {
		b, err := readBlock(txn, block)
		if err != nil {
			return err
		}
		k, v := historyEntry(b, key, value)
		return txn.Set(k, v)
	})
}

// TamperBlockForTest overwrites a stored block's function name without
// fixing its hash, for tests of VerifyChain.
func (s *Server) TamperBlockForTest(n uint64, function string) error {
	return s.db.Update(func(txn *badger.Txn) error {
		b, err := readBlock(txn, n)
		if err != nil {
			return err
		}
		b.Function = function
		raw, _ := json.Marshal(b)
		return txn.Set(blockKey(n), raw)
	})
}

// TamperRawForTest sets any key of the ledger's database.
func (s *Server) TamperRawForTest(key, value []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, value) })
}
