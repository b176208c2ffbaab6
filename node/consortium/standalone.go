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
	"github.com/prdcredit/ccnode/network/embedded"
	"github.com/prdcredit/ccnode/network/fabric"
	"github.com/prdcredit/ccnode/node"
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
// network/fabric (its members bootstrapped there). Otherwise it runs the
// embedded ledger (network/embedded) in ledger.embedded_dir, bootstrapped
// with this region when new: one process owns an embedded ledger, so a
// multi-region embedded consortium is 'ccnode demo'. Until the libp2p
// router (p2p) is wired the node routes only to itself.
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
	srv, err := embedded.Open(cfg.Ledger.EmbeddedDir, embedded.Options{Logger: log.With("part", "ledger")})
	if err != nil {
		return nil, err
	}
	cl, err := func() (network.Ledger, error) {
		if err := srv.AddIdentity(cfg.Ledger.MSPID, key.Public().(ed25519.PublicKey)); err != nil {
			return nil, err
		}
		cl := srv.Client(cfg.Ledger.MSPID, key)
		pid, err := node.PeerID(key.Public().(ed25519.PublicKey))
		if err != nil {
			return nil, err
		}
		// A new embedded ledger starts with this region as its only
		// member; an existing one keeps its members.
		err = cl.Bootstrap(ctx, []credit.RegionMember{{
			ID: cfg.Region, MSPID: cfg.Ledger.MSPID, PeerID: pid, PubKey: key.Public().(ed25519.PublicKey), Status: credit.StatusActive,
			Divisions: []string{strings.TrimRight(string(cfg.Region), "0")},
		}}, nil)
		if err != nil && !errors.Is(err, network.ErrConflict) {
			return nil, err
		}
		return cl, nil
	}()
	if err != nil {
		srv.Close()
		return nil, err
	}
	return ownedLedger{cl, srv}, nil
}

// ownedLedger closes the embedded server it runs on with the client.
type ownedLedger struct {
	network.Ledger
	srv *embedded.Server
}

func (o ownedLedger) Close() error { return errors.Join(o.Ledger.Close(), o.srv.Close()) }
