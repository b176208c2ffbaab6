package node

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
	"sync"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/httplimit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/embedded"
	"github.com/prdcredit/ccnode/network/fabric"
	"github.com/prdcredit/ccnode/store"
)

// Running is a region's node as `ccnode run` runs it, with the parts Open
// opened for it.
type Running struct {
	*Node
	Store  *store.DB
	Ledger network.Ledger
	// LedgerAddr is where this node serves its embedded ledger to the
	// other regions' nodes (ledger.serve_addr), when it does.
	LedgerAddr string
	once       sync.Once
	err        error
}

// Open opens what cfg names — the node's key and operators file, the
// region's store, the ledger — and starts the node on them.
//
// With ledger.fabric_gateway the node acts on the Fabric network through
// network/fabric. With ledger.embedded_url it reaches the embedded ledger
// another node serves. Otherwise it runs the embedded ledger
// (network/embedded) in ledger.embedded_dir, bootstrapped when new with
// ledger.bootstrap_file's members or with this region alone, and serves it
// to the other regions' nodes on ledger.serve_addr if set: one process
// owns an embedded ledger's folder, so the others reach it through that
// process.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (_ *Running, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkSecrets(cfg); err != nil {
		return nil, err
	}
	key, err := LoadNodeKey(cfg)
	if err != nil {
		return nil, err
	}
	// Read once here so that a missing or broken file stops the start;
	// the node reads it again on every admin call.
	if _, err := ReadOperators(cfg.Admin.OperatorsFile); err != nil {
		return nil, &ConfigError{Key: "admin.operators_file", Err: err}
	}
	r := &Running{}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Close())
		}
	}()
	if r.Store, err = store.Open(ctx, store.Options{Dir: StoreDir(cfg), Logger: log}); err != nil {
		return nil, err
	}
	ledgerKey := key
	if cfg.Ledger.KeyFile == "" && cfg.Ledger.FabricGateway == "" {
		// After `ccnode keys rotate` the old node key stays the region's
		// ledger identity.
		if _, err := os.Stat(RotatedLedgerKeyFile(cfg)); err == nil {
			cfg.Ledger.KeyFile = RotatedLedgerKeyFile(cfg)
		}
	}
	if cfg.Ledger.KeyFile != "" {
		if ledgerKey, err = LoadKeyFile(cfg.Ledger.KeyFile); err != nil {
			return nil, &ConfigError{Key: "ledger.key_file", Err: err}
		}
	}
	if r.Ledger, err = openLedger(ctx, cfg, ledgerKey, log); err != nil {
		return nil, err
	}
	if o, ok := r.Ledger.(*ownedLedger); ok && o.ln != nil {
		r.LedgerAddr = o.ln.Addr().String()
	}
	r.Node, err = New(ctx, cfg, Deps{Store: r.Store, Ledger: r.Ledger, Key: key, Logger: log, Operators: OperatorsFile(cfg.Admin.OperatorsFile)})
	if err != nil {
		// A region the ledger does not know (yet) starts as a candidate
		// (candidate.go), so no refusal of its identity lands here.
		return nil, err
	}
	warnAlone(ctx, r.Ledger, cfg, log)
	return r, nil
}

// warnAlone says so when the ledger knows no other active region: every
// query then answers from this region's records alone, which a sample
// config once did without a word.
func warnAlone(ctx context.Context, l network.Ledger, cfg Config, log *slog.Logger) {
	rs, err := l.Regions(ctx)
	if err != nil {
		return
	}
	for _, r := range rs {
		if r.ID != cfg.Region && r.Status == credit.StatusActive {
			return
		}
	}
	log.Warn("the ledger knows no other active region: queries answer from this region's records alone; "+
		"to join a consortium, start the ledger from a bootstrap file ('ccnode consortium bootstrap', ledger.bootstrap_file) "+
		"or name the node that serves it in ledger.embedded_url", "region", cfg.Region, "ledger_regions", len(rs))
}

// Close stops the node, then closes the ledger and the store. Safe twice.
func (r *Running) Close() error {
	r.once.Do(func() {
		var errs []error
		if r.Node != nil {
			errs = append(errs, r.Node.Close())
		}
		if r.Ledger != nil {
			errs = append(errs, r.Ledger.Close())
		}
		if r.Store != nil {
			errs = append(errs, r.Store.Close())
		}
		r.err = errors.Join(errs...)
	})
	return r.err
}

// openLedger connects to the configured ledger: Fabric, an embedded ledger
// another node serves, or one this node runs (and serves). The node
// publishes its p2p addresses once its host listens (New).
func openLedger(ctx context.Context, cfg Config, key ed25519.PrivateKey, log *slog.Logger) (network.Ledger, error) {
	if cfg.Ledger.FabricGateway != "" {
		fc, err := fabric.LoadConfig(cfg.Ledger.FabricGateway)
		if err != nil {
			return nil, fmt.Errorf("ledger.fabric_gateway: %w", err)
		}
		if err := CheckSecretFile(fc.KeyPath); err != nil {
			return nil, &ConfigError{Key: "ledger.fabric_gateway key_path", Err: err}
		}
		return fabric.Dial(ctx, fc, log.With("part", "fabric"))
	}
	if cfg.Ledger.EmbeddedURL != "" {
		l, err := embedded.Dial(cfg.Ledger.EmbeddedURL, cfg.Ledger.MSPID, key)
		if err != nil {
			return nil, &ConfigError{Key: "ledger.embedded_url", Err: err}
		}
		return l, nil
	}
	srv, err := embedded.Open(cfg.Ledger.EmbeddedDir, embedded.Options{Logger: log.With("part", "ledger")})
	if err != nil {
		return nil, err
	}
	o := &ownedLedger{srv: srv}
	if err := o.open(ctx, cfg, key, log); err != nil {
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

func (o *ownedLedger) open(ctx context.Context, cfg Config, key ed25519.PrivateKey, log *slog.Logger) error {
	pub := key.Public().(ed25519.PublicKey)
	if err := o.srv.AddIdentity(cfg.Ledger.MSPID, pub); err != nil {
		return err
	}
	cl := o.srv.Client(cfg.Ledger.MSPID, key)
	o.Ledger = cl
	pid, err := PeerID(pub)
	if err != nil {
		return err
	}
	// A new embedded ledger starts with the bootstrap file's members, or
	// with this region as its only member; an existing one keeps its
	// members.
	regions := []credit.RegionMember{{
		ID: cfg.Region, MSPID: cfg.Ledger.MSPID, PeerID: pid, PubKey: pub, Status: credit.StatusActive,
		Divisions: RegionDivisions(cfg.Region),
	}}
	var banks []credit.BankMember
	if cfg.Ledger.BootstrapFile != "" {
		if regions, banks, err = readBootstrap(cfg.Ledger.BootstrapFile, cfg.Region, pub); err != nil {
			return err
		}
	}
	// An existing ledger keeps its members; the node publishes its
	// addresses once its host listens.
	if err := cl.Bootstrap(ctx, regions, banks); err != nil && !errors.Is(err, network.ErrConflict) {
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
		// A region that rotated its node key keeps the ledger identity it
		// was first registered with: its record's key differs from it.
		if err := o.srv.AddIdentity(m.MSPID, m.PubKey); err != nil && !errors.Is(err, network.ErrConflict) {
			return fmt.Errorf("ledger identity of region %s: %w", m.ID, err)
		}
	}
	if o.ln, err = net.Listen("tcp", cfg.Ledger.ServeAddr); err != nil {
		return fmt.Errorf("ledger.serve_addr: %w", err)
	}
	o.http = &http.Server{Handler: o.srv.Handler(), ReadHeaderTimeout: cfg.HTTP.ReadTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	// The same caps as the bank API's, for the ledger's own body limit.
	lim := cfg.HTTP.limits(nil)
	lim.MaxBodyBytes = embedded.MaxRequestBytes
	served := httplimit.Apply(o.http, o.ln, lim)
	go func() {
		if err := o.http.Serve(served); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serving the embedded ledger stopped", "err", err)
		}
	}()
	log.Info("serving the embedded ledger", "addr", o.ln.Addr().String(), "members", len(members))
	return nil
}

func (o *ownedLedger) Close() error {
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

// readBootstrap reads the first members, checked as the contract will
// check them but naming the file, member and field; this region must be
// among them with this node's key.
func readBootstrap(path string, region credit.RegionID, pub ed25519.PublicKey) ([]credit.RegionMember, []credit.BankMember, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("ledger.bootstrap_file: %w (compose it from the regions' member descriptors with 'ccnode consortium bootstrap')", err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("ledger.bootstrap_file: %w", err)
	}
	var f BootstrapFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, nil, fmt.Errorf("ledger.bootstrap_file %s: %w", path, err)
	}
	if err := ValidateBootstrap(f); err != nil {
		return nil, nil, fmt.Errorf("ledger.bootstrap_file %s: %w", path, err)
	}
	for _, r := range f.Regions {
		if r.ID == region {
			if !pub.Equal(ed25519.PublicKey(r.PubKey)) {
				return nil, nil, fmt.Errorf("ledger.bootstrap_file %s: region %s has another key than this node's", path, region)
			}
			return f.Regions, f.Banks, nil
		}
	}
	return nil, nil, fmt.Errorf("ledger.bootstrap_file %s: region %s is not among its members", path, region)
}

// StoreDir is the node's record store folder, DATA_DIR/db: every command
// that works on a node's records resolves it here.
func StoreDir(cfg Config) string { return filepath.Join(cfg.DataDir, "db") }
