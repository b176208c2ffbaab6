package consortium

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/pnet"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/embedded"
	"github.com/prdcredit/ccnode/network/fabric"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/store"
)

// Standalone is one region's node run by `ccnode run`, with what it owns.
type Standalone struct {
	Node   *node.Node
	Store  *store.DB
	Ledger network.Ledger
	Host   host.Host
	Server *p2p.Server
	closed bool
}

// OpenStandalone opens the region's store and key and starts its node.
//
// With ledger.fabric_gateway the node acts on the Fabric network through
// network/fabric (its members bootstrapped there). Otherwise it runs the
// embedded ledger (network/embedded) in ledger.embedded_dir, bootstrapped
// with this region when new: one process owns an embedded ledger, so a
// multi-region embedded consortium is 'ccnode demo'. Queries go to the
// member regions over libp2p (p2p), this region answering in-process; the
// region's record on the ledger is updated with its listen addresses.
func OpenStandalone(ctx context.Context, cfg node.Config, log *slog.Logger) (_ *Standalone, err error) {
	key, err := node.LoadKeyFile(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(cfg.HTTP.AdminTokenFile)
	if err != nil {
		return nil, fmt.Errorf("http.admin_token_file: %w", err)
	}
	s := &Standalone{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Store, err = store.Open(ctx, store.Options{Dir: filepath.Join(cfg.DataDir, "db"), Logger: log}); err != nil {
		return nil, err
	}
	members := p2p.NewMembership(log, nil)
	var psk pnet.PSK
	if cfg.P2P.PSKFile != "" {
		if psk, err = p2p.LoadPSK(cfg.P2P.PSKFile); err != nil {
			return nil, fmt.Errorf("p2p.psk_file: %w", err)
		}
	}
	if s.Host, err = p2p.NewHost(p2p.HostConfig{Key: key, Listen: cfg.P2P.Listen, PSK: psk, Members: members, Logger: log}); err != nil {
		return nil, err
	}
	var addrs []string
	for _, a := range s.Host.Addrs() {
		addrs = append(addrs, a.String())
	}
	if s.Ledger, err = openLedger(ctx, cfg, key, addrs, log); err != nil {
		return nil, err
	}
	router := &node.P2PRouter{}
	h := s.Host
	n, err := node.New(cfg, node.Deps{
		DB: s.Store.Badger(), Records: node.StoreRecords{Reader: s.Store}, Ledger: s.Ledger,
		Router: router, Key: key, Logger: log, AdminToken: strings.TrimSpace(string(tok)),
		OnRegions: func(rs []credit.RegionMember) {
			if err := members.SetMembers(rs); err != nil {
				log.Warn("p2p members", "err", err)
			}
		},
		Peers: func() int { return len(h.Network().Peers()) },
	})
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	s.Node = n
	scfg, err := n.P2PServerConfig(s.Store)
	if err != nil {
		return nil, err
	}
	if s.Server, err = p2p.NewServer(scfg); err != nil {
		return nil, err
	}
	s.Server.Register(s.Host)
	rt, err := p2p.NewRouter(p2p.RouterConfig{Host: s.Host, NetworkID: cfg.P2P.NetworkID, Region: cfg.Region, Key: key,
		Members: members, Local: s.Server, Timeout: cfg.Query.RegionTimeout, Logger: log})
	if err != nil {
		return nil, err
	}
	router.Set(rt)
	return s, nil
}

// Close stops the node, then closes the store. Safe twice.
func (s *Standalone) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.Node != nil {
		errs = append(errs, s.Node.Close())
	}
	if s.Server != nil {
		errs = append(errs, s.Server.Close())
	}
	if s.Host != nil {
		errs = append(errs, s.Host.Close())
	}
	if s.Ledger != nil {
		errs = append(errs, s.Ledger.Close())
	}
	if s.Store != nil {
		errs = append(errs, s.Store.Close())
	}
	return errors.Join(errs...)
}

// openLedger connects to the configured ledger and publishes this
// region's p2p addresses in its member record.
func openLedger(ctx context.Context, cfg node.Config, key ed25519.PrivateKey, addrs []string, log *slog.Logger) (network.Ledger, error) {
	if cfg.Ledger.FabricGateway != "" {
		fc, err := fabric.LoadConfig(cfg.Ledger.FabricGateway)
		if err != nil {
			return nil, fmt.Errorf("ledger.fabric_gateway: %w", err)
		}
		l, err := fabric.Dial(ctx, fc, log.With("part", "fabric"))
		if err != nil {
			return nil, err
		}
		publishAddrs(ctx, l, cfg.Region, addrs, log)
		return l, nil
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
			Divisions: []string{strings.TrimRight(string(cfg.Region), "0")}, Addrs: addrs,
		}}, nil)
		if errors.Is(err, network.ErrConflict) {
			publishAddrs(ctx, cl, cfg.Region, addrs, log)
		} else if err != nil {
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

// publishAddrs updates this region's record with its current listen
// addresses (ports chosen at start); failure is logged, the node still
// serves its own region.
func publishAddrs(ctx context.Context, l network.Ledger, region credit.RegionID, addrs []string, log *slog.Logger) {
	m, err := l.Region(ctx, region)
	if err != nil {
		log.Warn("reading own region record", "err", err)
		return
	}
	if slices.Equal(m.Addrs, addrs) {
		return
	}
	m.Addrs = addrs
	if err := l.UpdateRegion(ctx, m); err != nil {
		log.Warn("publishing p2p addresses", "err", err)
	}
}
