package embedded

import (
	"fmt"
	"io"
)

// Backup writes a Badger backup stream of the whole ledger (blocks, state,
// identities, nonces) at one read timestamp, while it serves: a block and
// the state it produced are committed in one transaction, so the stream
// holds a chain that VerifyChain accepts. The stream loads with Badger's
// DB.Load into an empty folder that Open then opens.
func (s *Server) Backup(w io.Writer) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.dbClosed {
		return errClosed
	}
	if _, err := s.db.Backup(w, 0); err != nil {
		return fmt.Errorf("embedded ledger backup: %w", err)
	}
	return nil
}
