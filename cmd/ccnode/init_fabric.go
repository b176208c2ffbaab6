package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/fabric"
	"github.com/prdcredit/ccnode/node"
)

// initFabricFlags are init's flags for a node on Fabric.
func initFabricFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "node-key", Category: catLedger,
			Usage: "with --fabric-gateway: use this existing node key (such as the one `ccnode fabric up` registered, <dir>/nodes/REGION/node.key) instead of making one"},
		&cli.StringFlag{Name: "current-key", Category: catLedger,
			Usage: "with --fabric-gateway: the node key the region's record names now, which signs the change to the new one (default: <dir>/nodes/REGION/node.key beside the connection files, the one `ccnode fabric up` made)"},
		&cli.DurationFlag{Name: "ledger-timeout", Category: catLedger, Value: time.Minute,
			Usage: "with --fabric-gateway: how long to try reading and updating the region's record on the ledger"},
	}
}

// fabricInit is init's work on the ledger for a node on Fabric: the config
// takes the connection file's MSP id (the identity the node acts as), and
// the node key is one the region's ledger record names — the --node-key
// given, or a new one init registers in the record, signed by the
// region's own identity — so the node's first receipt already verifies.
type fabricInit struct {
	gateway string // absolute path of the connection file
	conn    fabric.Config
	timeout time.Duration
	nodeKey string // --node-key, absolute; empty: make a new key
	// currentKey (--current-key) signs the change of the record's key;
	// empty: the one `fabric up` made beside the connection files.
	currentKey string
	note       string // what key did on the ledger, for init's summary
}

// newFabricInit reads the connection file and points cfg at it; it writes
// nothing.
func newFabricInit(c *cli.Context, cfg *node.Config) (*fabricInit, error) {
	gw, err := filepath.Abs(c.String("fabric-gateway"))
	if err != nil {
		return nil, fmt.Errorf("--fabric-gateway: %w", err)
	}
	conn, err := fabric.LoadConfig(gw)
	if err != nil {
		return nil, fmt.Errorf("--fabric-gateway %s: %w", gw, err)
	}
	fi := &fabricInit{gateway: gw, conn: conn, timeout: c.Duration("ledger-timeout"), currentKey: c.String("current-key")}
	if nk := c.String("node-key"); nk != "" {
		if fi.nodeKey, err = filepath.Abs(nk); err != nil {
			return nil, fmt.Errorf("--node-key: %w", err)
		}
		cfg.KeyFile = fi.nodeKey
	}
	cfg.Ledger.FabricGateway, cfg.Ledger.EmbeddedDir = gw, ""
	cfg.Ledger.MSPID = conn.MSPID
	return fi, nil
}

// keyRegistrar is the part of the ledger init needs.
type keyRegistrar interface {
	Region(ctx context.Context, id credit.RegionID) (credit.RegionMember, error)
	UpdateRegion(ctx context.Context, r credit.RegionMember) error
}

// key returns the node key for cfg, registered in the region's ledger
// record, and writes it to cfg.KeyFile when it is new. It checks the
// record before it writes anything: a region with none gets a new key for
// a candidate's node; otherwise the connection file must be the region's
// own organisation (only it may change the record).
func (fi *fabricInit) key(ctx context.Context, cfg node.Config) (ed25519.PrivateKey, error) {
	ctx, cancel := context.WithTimeout(ctx, fi.timeout)
	defer cancel()
	l, err := fabric.Dial(ctx, fi.conn, nil)
	if err != nil {
		return nil, fmt.Errorf("--fabric-gateway %s: %w", fi.gateway, err)
	}
	defer l.Close()
	var key ed25519.PrivateKey
	if fi.nodeKey != "" {
		if key, err = node.LoadKeyFile(fi.nodeKey); err != nil {
			return nil, fmt.Errorf("--node-key: %w", err)
		}
	} else {
		if _, err := os.Stat(cfg.KeyFile); err == nil {
			return nil, fmt.Errorf("%s exists; not overwriting it (pass it as --node-key to keep it)", cfg.KeyFile)
		}
		if _, key, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return nil, err
		}
	}
	// The key `fabric up` made for the region (fabric-net/nodes/REGION/
	// node.key, beside the connection files) signs the change to this
	// one: the contract takes no new node key without the current key's
	// signature.
	currentPath := fi.currentKey
	if currentPath == "" {
		currentPath = filepath.Join(filepath.Dir(filepath.Dir(fi.gateway)), "nodes", string(cfg.Region), "node.key")
	}
	current, err := node.LoadKeyFile(currentPath)
	if err != nil && fi.currentKey != "" {
		return nil, fmt.Errorf("--current-key: %w", err)
	}
	registered, err := registerNodeKey(ctx, l, cfg.Region, fi.conn.MSPID, key, current)
	// A region the consortium has not accepted yet (its organisation on
	// the channel, `ccnode fabric add-region`) gets a key of its own: its
	// node runs as a candidate, proposing member.json for the vote.
	candidate := errors.Is(err, errNoRecord)
	if err != nil && !candidate {
		return nil, fmt.Errorf("--fabric-gateway %s: %w", fi.gateway, err)
	}
	// The data folder holds the rest init writes, with or without a key
	// of its own in it.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	if fi.nodeKey == "" {
		if err := node.WriteKeyFile(cfg.KeyFile, key); err != nil {
			return nil, fmt.Errorf("%w (the ledger already names this key for region %s: run init again with a new --dir, whose key replaces it)", err, cfg.Region)
		}
	}
	pid, _ := node.PeerID(key.Public().(ed25519.PublicKey))
	if candidate {
		fi.note = fmt.Sprintf("  ledger:    Fabric, as %s: region %s has no record on the ledger yet: its node runs as a candidate until a majority of the regions approve it (ccnode region propose --descriptor %s)",
			fi.conn.MSPID, cfg.Region, filepath.Join(cfg.DataDir, memberFile))
	} else if registered {
		fi.note = fmt.Sprintf("  ledger:    Fabric, as %s: registered this node key in region %s's record (peer id %s); a node still running with the old key is no longer ready",
			fi.conn.MSPID, cfg.Region, pid)
	} else {
		fi.note = fmt.Sprintf("  ledger:    Fabric, as %s: region %s's record already names this node key (peer id %s)", fi.conn.MSPID, cfg.Region, pid)
	}
	return key, nil
}

// errNoRecord: the region has no ledger record; its node is a candidate.
var errNoRecord = errors.New("no record on the ledger")

// registerNodeKey makes region's ledger record name key, unless it does
// already (then it reports false). The record must exist and belong to
// mspID, the identity l acts as. current, when it is the record's key,
// signs the change (credit.KeyChange); without it the contract refuses.
func registerNodeKey(ctx context.Context, l keyRegistrar, region credit.RegionID, mspID string, key, current ed25519.PrivateKey) (bool, error) {
	m, err := l.Region(ctx, region)
	if errors.Is(err, network.ErrNotFound) {
		return false, fmt.Errorf("region %s: %w: %w", region, errNoRecord, err)
	}
	if err != nil {
		return false, fmt.Errorf("reading region %s's record on the ledger (is the network up?): %w", region, err)
	}
	if m.MSPID != mspID {
		return false, fmt.Errorf("the connection file acts as %s, but region %s's record belongs to %s: use that organisation's connection file", mspID, region, m.MSPID)
	}
	pub := key.Public().(ed25519.PublicKey)
	if pub.Equal(ed25519.PublicKey(m.PubKey)) {
		return false, nil
	}
	pid, err := node.PeerID(pub)
	if err != nil {
		return false, err
	}
	// The old node's addresses go with its key: no region should dial
	// them expecting the new peer id. The node publishes its own at start.
	was := ed25519.PublicKey(m.PubKey)
	m.PubKey, m.PeerID, m.Addrs = pub, pid, nil
	if current != nil && was.Equal(current.Public()) {
		k, err := credit.SignKeyChange(current, region, pub, time.Now())
		if err != nil {
			return false, err
		}
		m.KeyChange = &k
	}
	if err := l.UpdateRegion(ctx, m); err != nil {
		return false, fmt.Errorf("registering the new node key in region %s's record: %w", region, err)
	}
	return true, nil
}
