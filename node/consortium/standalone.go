package consortium

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	// LedgerAddr is where this node serves its embedded ledger to the
	// other regions' nodes (ledger.serve_addr), once started.
	LedgerAddr string
	closed     bool
}

// OpenStandalone opens the region's store and key and starts its node.
//
// With ledger.fabric_gateway the node acts on the Fabric network through
// network/fabric (its members bootstrapped there). With
// ledger.embedded_url it reaches the embedded ledger another node serves.
// Otherwise it runs the embedded ledger (network/embedded) in
// ledger.embedded_dir, bootstrapped when new with ledger.bootstrap_file's
// members or with this region alone, and serves it to the other regions'
// nodes on ledger.serve_addr if set: one process owns an embedded ledger's
// folder, so the others reach it through that process. Queries go to the
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
	if o, ok := s.Ledger.(ownedLedger); ok && o.ln != nil {
		s.LedgerAddr = o.ln.Addr().String()
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
	if cfg.Ledger.EmbeddedURL != "" {
		l, err := embedded.Dial(cfg.Ledger.EmbeddedURL, cfg.Ledger.MSPID, key)
		if err != nil {
			return nil, fmt.Errorf("ledger.embedded_url: %w", err)
		}
		publishAddrs(ctx, l, cfg.Region, addrs, log)
		return l, nil
	}
	srv, err := embedded.Open(cfg.Ledger.EmbeddedDir, embedded.Options{Logger: log.With("part", "ledger")})
	if err != nil {
		return nil, err
	}
	o := ownedLedger{srv: srv}
	if err := o.open(ctx, cfg, key, addrs, log); err != nil {
		return nil, errors.Join(err, o.Close())
	}
	return o, nil
}

// ownedLedger is an embedded ledger this node runs, and serves when
// ledger.serve_addr is set; Close closes them with the client.
type ownedLedger struct {
	network.Ledger
	srv  *embedded.Server
	ln   net.Listener
	http *http.Server
}

func (o *ownedLedger) open(ctx context.Context, cfg node.Config, key ed25519.PrivateKey, addrs []string, log *slog.Logger) error {
	pub := key.Public().(ed25519.PublicKey)
	if err := o.srv.AddIdentity(cfg.Ledger.MSPID, pub); err != nil {
		return err
	}
	cl := o.srv.Client(cfg.Ledger.MSPID, key)
	o.Ledger = cl
	pid, err := node.PeerID(pub)
	if err != nil {
		return err
	}
	// A new embedded ledger starts with the bootstrap file's members, or
	// with this region as its only member; an existing one keeps its
	// members.
	regions := []credit.RegionMember{{
		ID: cfg.Region, MSPID: cfg.Ledger.MSPID, PeerID: pid, PubKey: pub, Status: credit.StatusActive,
		Divisions: []string{strings.TrimRight(string(cfg.Region), "0")}, Addrs: addrs,
	}}
	var banks []credit.BankMember
	if cfg.Ledger.BootstrapFile != "" {
		if regions, banks, err = readBootstrap(cfg.Ledger.BootstrapFile, cfg.Region, pub, addrs); err != nil {
			return err
		}
	}
	err = cl.Bootstrap(ctx, regions, banks)
	if errors.Is(err, network.ErrConflict) {
		publishAddrs(ctx, cl, cfg.Region, addrs, log)
	} else if err != nil {
		return err
	}
	if cfg.Ledger.ServeAddr == "" {
		return nil
	}
	// The member regions act on the served ledger with their own keys,
	// the ones their member records hold.
	members, err := cl.Regions(ctx)
	if err != nil {
		return err
	}
	for _, m := range members {
		if err := o.srv.AddIdentity(m.MSPID, m.PubKey); err != nil {
			return fmt.Errorf("ledger identity of region %s: %w", m.ID, err)
		}
	}
	if o.ln, err = net.Listen("tcp", cfg.Ledger.ServeAddr); err != nil {
		return fmt.Errorf("ledger.serve_addr: %w", err)
	}
	o.http = &http.Server{Handler: o.srv.Handler(), ReadHeaderTimeout: cfg.HTTP.ReadTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := o.http.Serve(o.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serving the embedded ledger stopped", "err", err)
		}
	}()
	log.Info("serving the embedded ledger", "addr", o.ln.Addr().String(), "members", len(members))
	return nil
}

func (o ownedLedger) Close() error {
	var errs []error
	if o.http != nil {
		// Event streams stay open until their callers go: close, not
		// shut down gracefully.
		errs = append(errs, o.http.Close())
	}
	if o.Ledger != nil {
		errs = append(errs, o.Ledger.Close())
	}
	return errors.Join(append(errs, o.srv.Close())...)
}

// bootstrapFile is ledger.bootstrap_file: the first members of a new
// embedded ledger.
type bootstrapFile struct {
	Regions []credit.RegionMember `json:"regions"`
	Banks   []credit.BankMember   `json:"banks"`
}

// readBootstrap reads the first members; this region must be among them
// with this node's key, and gets its current listen addresses.
func readBootstrap(path string, region credit.RegionID, pub ed25519.PublicKey, addrs []string) ([]credit.RegionMember, []credit.BankMember, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("ledger.bootstrap_file: %w", err)
	}
	var f bootstrapFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, nil, fmt.Errorf("ledger.bootstrap_file %s: %w", path, err)
	}
	for i, r := range f.Regions {
		if r.ID == region {
			if !pub.Equal(ed25519.PublicKey(r.PubKey)) {
				return nil, nil, fmt.Errorf("ledger.bootstrap_file %s: region %s has another key than this node's", path, region)
			}
			f.Regions[i].Addrs = addrs
			return f.Regions, f.Banks, nil
		}
	}
	return nil, nil, fmt.Errorf("ledger.bootstrap_file %s: region %s is not among its members", path, region)
}

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
