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
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/fabric"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/memledger"
	"github.com/prdcredit/ccnode/store"
)

// Standalone is one region's node run by `ccnode run`, with what it owns.
type Standalone struct {
	Node   *node.Node
	Store  *store.DB
	Ledger network.Ledger
	closed bool
}

// OpenStandalone opens the region's store and key and starts its node.
//
// With ledger.fabric_gateway the node acts on the Fabric network through
// network/fabric (its members bootstrapped there). Otherwise, until the
// embedded ledger (network/embedded) is wired, it runs on an in-memory
// ledger bootstrapped with this region alone. Until the libp2p router (p2p)
// is wired it routes only to itself.
func OpenStandalone(ctx context.Context, cfg node.Config, log *slog.Logger) (*Standalone, error) {
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
	s := &Standalone{Store: db}
	if s.Ledger, err = openLedger(ctx, cfg, key, log); err != nil {
		db.Close()
		return nil, err
	}
	router := node.NewLocalRouter(cfg.Query.RegionTimeout)
	n, err := node.New(cfg, node.Deps{
		DB: db.Badger(), Records: node.StoreRecords{Reader: db}, Ledger: s.Ledger,
		Router: router, Key: key, Logger: log, AdminToken: strings.TrimSpace(string(tok)),
	})
	if err != nil {
		s.Ledger.Close()
		db.Close()
		return nil, err
	}
	router.Add(cfg.Region, n.Answerer())
	if err := n.Start(ctx); err != nil {
		s.Ledger.Close()
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
	return errors.Join(s.Node.Close(), s.Ledger.Close(), s.Store.Close())
}

func openLedger(ctx context.Context, cfg node.Config, key ed25519.PrivateKey, log *slog.Logger) (network.Ledger, error) {
	if cfg.Ledger.FabricGateway != "" {
		fc, err := fabric.LoadConfig(cfg.Ledger.FabricGateway)
		if err != nil {
			return nil, fmt.Errorf("ledger.fabric_gateway: %w", err)
		}
		return fabric.Dial(ctx, fc, log.With("part", "fabric"))
	}
	mem := memledger.New(nil)
	log.Warn("embedded ledger not wired in this build: using an in-memory ledger with this region only; consents and checkpoints are forgotten at exit")
	err := mem.Client("bootstrap").Bootstrap(ctx, []credit.RegionMember{{
		ID: cfg.Region, MSPID: cfg.Ledger.MSPID, PubKey: key.Public().(ed25519.PublicKey), Status: credit.StatusActive,
		Divisions: []string{strings.TrimRight(string(cfg.Region), "0")},
	}}, nil)
	if err != nil {
		return nil, err
	}
	return mem.Client(cfg.Ledger.MSPID), nil
}
