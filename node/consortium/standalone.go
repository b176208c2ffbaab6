package consortium

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/memledger"
	"github.com/prdcredit/ccnode/store"
)

// ErrBackendMissing: the config names a ledger backend this build does
// not wire yet.
var ErrBackendMissing = errors.New("ledger backend not available in this build")

// Standalone is one region's node run by `ccnode run`, with what it owns.
type Standalone struct {
	Node   *node.Node
	Store  *store.DB
	Ledger *memledger.Server
	closed bool
}

// OpenStandalone opens the region's store and key and starts its node.
//
// Until the embedded ledger (network/embedded) and the libp2p router (p2p)
// are wired, the node runs on an in-memory ledger bootstrapped with this
// region alone and routes only to itself: useful to try the bank API, not
// a consortium. A config naming a Fabric gateway is refused.
func OpenStandalone(ctx context.Context, cfg node.Config, log *slog.Logger) (*Standalone, error) {
	if cfg.Ledger.FabricGateway != "" {
		return nil, fmt.Errorf("ledger.fabric_gateway %s: %w", cfg.Ledger.FabricGateway, ErrBackendMissing)
	}
	key, err := node.LoadKeyFile(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(cfg.HTTP.AdminTokenFile)
	if err != nil {
		return nil, fmt.Errorf("http.admin_token_file: %w", err)
	}
	db, err := store.Open(ctx, store.Options{Dir: filepath.Join(cfg.DataDir, "db"), Logger: log})
	if err != nil {
		return nil, err
	}
	s := &Standalone{Store: db, Ledger: memledger.New(nil)}
	log.Warn("embedded ledger not wired in this build: using an in-memory ledger with this region only; consents and checkpoints are forgotten at exit")
	err = s.Ledger.Client("bootstrap").Bootstrap(ctx, []credit.RegionMember{{
		ID: cfg.Region, MSPID: cfg.Ledger.MSPID, PubKey: key.Public().(ed25519.PublicKey), Status: credit.StatusActive,
		Divisions: []string{strings.TrimRight(string(cfg.Region), "0")},
	}}, nil)
	if err != nil {
		db.Close()
		return nil, err
	}
	router := node.NewLocalRouter(cfg.Query.RegionTimeout)
	n, err := node.New(cfg, node.Deps{
		DB: db.Badger(), Records: node.StoreRecords{Reader: db}, Ledger: s.Ledger.Client(cfg.Ledger.MSPID),
		Router: router, Key: key, Logger: log, AdminToken: strings.TrimSpace(string(tok)),
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	router.Add(cfg.Region, n.Answerer())
	if err := n.Start(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s.Node = n
	return s, nil
}

// Close stops the node, then closes the store. Safe twice.
func (s *Standalone) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	return errors.Join(s.Node.Close(), s.Store.Close())
}
