package fabricnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// AddRegionConfig is what AddRegion needs besides the region.
type AddRegionConfig struct {
	// Server and Args start the new region's chaincode server (as
	// Config.ChaincodeServer and ChaincodeArgs): the contract build the
	// other regions run.
	Server string
	Args   []string
	// StopWithParent is Config's: tests set it so a crashed test binary
	// leaves no process behind.
	StopWithParent bool
	// Logger receives progress; default discards.
	Logger *slog.Logger
}

// Errors of AddRegion that a caller may want to tell apart.
var (
	// ErrRegionExists: the region's id, name or MSP id is already the
	// network's, or its organisation is already on the channel.
	ErrRegionExists = errors.New("fabricnet: region already in the network")
	// ErrNotRunning: a process the change needs (the orderer, a region's
	// peer) is not running.
	ErrNotRunning = errors.New("fabricnet: the network is not running")
)

// AddRegion adds region r's organisation to the running network in dir
// through Fabric's own governance: it generates r's crypto material (its
// own CAs, as Up would have), fetches the channel configuration, computes
// with configtxlator a configuration update that adds r's organisation
// (with its anchor peer) to the Application group and moves the
// Application policies Admins, LifecycleEndorsement and Endorsement to a
// majority of all regions, has a majority of the existing regions' admins
// sign it (the current Admins policy) and submits it. It then starts r's
// peers, joins them to the channel, installs the contract's package for
// r, starts r's chaincode server, approves the committed definition for
// r's package, writes r's connection file and network.json, and returns
// once a submit through r's gateway commits. The contract's definition
// names no policy of its own (it inherits /Channel/Application/Endorsement),
// so it needs no new sequence.
//
// If it fails it stops the processes it started; a failure after the
// channel update leaves r's organisation on the channel.
func AddRegion(ctx context.Context, dir string, r Region, ac AddRegionConfig) (n *Network, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fabricnet: add region: %w", err)
	}
	if n, err = Load(abs); err != nil {
		return nil, err
	}
	if ac.Server == "" {
		return nil, fmt.Errorf("fabricnet: add region: no chaincode server binary: %w", ErrConfig)
	}
	if err := n.CheckAddRegion(r); err != nil {
		return nil, err
	}
	p, err := n.plan(Config{StopWithParent: ac.StopWithParent, Logger: ac.Logger})
	if err != nil {
		return nil, err
	}
	existing := slices.Clone(p.Regions)
	// As many peers as the first region runs (Up gives every region the same).
	extra := len(n.ExtraPeers[n.Regions[0].ID])
	held, ports, err := reservePorts(4 + 3*extra)
	if err != nil {
		return nil, err
	}
	defer held.releaseAll()
	p.ports = held
	rp := regionPlan{Region: r, Domain: r.domain(), PeerPort: ports[0], CCPort: ports[1], OpsPort: ports[2], CCServerPort: ports[3]}
	for k := 1; k <= extra; k++ {
		e := 4 + 3*(k-1)
		rp.Extra = append(rp.Extra, peerPlan{Index: k, PeerPort: ports[e], CCPort: ports[e+1], OpsPort: ports[e+2]})
	}
	// The template renders every region, the new one last: the channel's
	// rules become what Up would have written for all of them.
	p.Regions = append(p.Regions, rp)
	work := filepath.Join(n.Dir, "add-region", r.Name)
	defer func() {
		if err == nil {
			return
		}
		if serr := p.stopLaunched(); serr != nil {
			p.cfg.Logger.Warn("fabricnet: stopping what a failed add-region started", "err", serr)
		}
		err = fmt.Errorf("fabricnet: add region %s: %w (logs in %s, files in %s)", r.ID, err, filepath.Join(n.Dir, logsDir), work)
	}()
	if err := os.RemoveAll(work); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	var pkgID string
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"crypto material", func(ctx context.Context) error { return p.generateRegionCrypto(ctx, work, rp) }},
		{"channel configuration update", func(ctx context.Context) error { return p.addToChannel(ctx, work, existing, rp) }},
		{"peers", func(ctx context.Context) error {
			var peers []*regionPeer
			for _, pp := range rp.peers() {
				peers = append(peers, &regionPeer{r: rp, pp: pp})
			}
			return p.startPeersOf(ctx, peers)
		}},
		{"chaincode", func(ctx context.Context) error {
			def, err := p.committedDefinition(ctx)
			if err != nil {
				return err
			}
			// Every region's package has the label of the one region 0
			// serves now: label:sha256.
			label := n.Chaincode + "_1"
			if id := n.Peers[n.Regions[0].ID].PackageID; id != "" {
				if i := strings.LastIndex(id, ":"); i > 0 {
					label = id[:i]
				}
			}
			pkgID, err = p.installAndApprove(ctx, rp, ccRelease{label: label,
				pkgPath: filepath.Join(n.Dir, "chaincode", fmt.Sprintf("%s-%s.tar.gz", r.Name, label)),
				process: "ccserver-" + r.Name, server: ac.Server, args: ac.Args,
				version: def.Version, sequence: strconv.Itoa(def.Sequence)})
			return err
		}},
		{"connection file", func(context.Context) error {
			p.packageIDs = map[credit.RegionID]string{r.ID: pkgID}
			if err := p.addRegionTo(n, rp, "fabricnet.AddRegion"); err != nil {
				return err
			}
			return n.save()
		}},
		{"readiness", func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			return parallel(n.Gateways[r.ID].all(), func(g Gateway) error { return WaitReady(ctx, g.ProbeSubmit) })
		}},
	}
	start := time.Now()
	for _, s := range steps {
		t := time.Now()
		if err := s.run(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		p.cfg.Logger.Info("add region step done", "region", r.ID, "step", s.name, "took", time.Since(t).Round(time.Millisecond))
	}
	p.cfg.Logger.Info("region added", "region", r.ID, "msp", r.MSPID, "took", time.Since(start).Round(time.Millisecond))
	return n, nil
}

// CheckAddRegion says why AddRegion would refuse r before it changes
// anything: r clashes with a region of the network (ErrRegionExists), is
// no valid region (ErrConfig), or the network is not running
// (ErrNotRunning).
func (n *Network) CheckAddRegion(r Region) error {
	for _, have := range n.Regions {
		if have.ID == r.ID || have.Name == r.Name || have.MSPID == r.MSPID {
			return fmt.Errorf("%w: %s (%s, %s) clashes with %s (%s, %s) in %s", ErrRegionExists,
				r.ID, r.Name, r.MSPID, have.ID, have.Name, have.MSPID, n.Dir)
		}
	}
	if len(n.Regions) == 0 {
		return fmt.Errorf("%w: the network in %s has no region", ErrNoRegion, n.Dir)
	}
	if err := (Config{Dir: n.Dir, Regions: append(slices.Clone(n.Regions), r)}).WithDefaults().Validate(); err != nil {
		return fmt.Errorf("fabricnet: add region: %w", err)
	}
	return n.CheckRunning()
}

// CheckRunning fails with ErrNotRunning unless the orderer and every
// region's peer 0 run: a channel update needs the orderer, and the new
// majority of endorsements the peers.
func (n *Network) CheckRunning() error {
	ps, err := readPids(n.Dir)
	if err != nil {
		return err
	}
	need := []string{"orderer"}
	for _, r := range n.Regions {
		need = append(need, PeerProcess(r.Name, 0))
	}
	for _, name := range need {
		var last *Process
		for i := range ps {
			if ps[i].Name == name {
				last = &ps[i]
			}
		}
		switch {
		case last == nil:
			return fmt.Errorf("%w: no %s recorded in %s", ErrNotRunning, name, n.Dir)
		case !last.Alive:
			return fmt.Errorf("%w: %s (pid %d) in %s has stopped (see %s)", ErrNotRunning, name, last.Pid, n.Dir, last.Log)
		}
	}
	return nil
}

// stopLaunched stops the processes this plan started.
func (p *plan) stopLaunched() error {
	p.mu.Lock()
	names := slices.Clone(p.launched)
	p.mu.Unlock()
	if len(names) == 0 {
		return nil
	}
	ps, err := readPids(p.dir)
	if err != nil {
		return err
	}
	ps = slices.DeleteFunc(ps, func(pr Process) bool { return !slices.Contains(names, pr.Name) })
	return stop(ps, StopTimeout)
}

// generateRegionCrypto runs cryptogen for region r alone and moves its
// organisation into the network's crypto folder, next to the others.
func (p *plan) generateRegionCrypto(ctx context.Context, work string, r regionPlan) error {
	dst := filepath.Join(p.Crypto, "peerOrganizations", r.Domain)
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("%w: %s already exists", ErrRegionExists, dst)
	}
	b, err := render(cryptoRegionTmpl, r)
	if err != nil {
		return err
	}
	cfg := filepath.Join(work, "crypto-config.yaml")
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		return err
	}
	out := filepath.Join(work, "crypto")
	if _, err := p.run(ctx, nil, "cryptogen", "generate", "--config", cfg, "--output", out); err != nil {
		return err
	}
	return os.Rename(filepath.Join(out, "peerOrganizations", r.Domain), dst)
}

// addToChannel adds region r's organisation to the channel: the update is
// the difference (configtxlator compute_update) between the current
// configuration and one whose Application group has r's organisation and
// the Application policies of every region, both taken from the channel
// block configtxgen makes for all regions from Up's own template. The
// first majority of the existing regions' admins sign it: signconfigtx
// for all but the last, whose `peer channel update` adds its signature.
func (p *plan) addToChannel(ctx context.Context, work string, existing []regionPlan, r regionPlan) error {
	current, err := p.fetchConfig(ctx, work, existing[0])
	if err != nil {
		return err
	}
	app, err := applicationGroup(current)
	if err != nil {
		return err
	}
	groups, err := path(app, "groups")
	if err != nil {
		return err
	}
	if _, ok := groups[r.MSPID]; ok {
		return fmt.Errorf("%w: %s is already an organisation of channel %s", ErrRegionExists, r.MSPID, p.cfg.Channel)
	}
	target, err := p.targetConfig(ctx, work)
	if err != nil {
		return err
	}
	targetApp, err := applicationGroup(target)
	if err != nil {
		return err
	}
	org, err := path(targetApp, "groups", r.MSPID)
	if err != nil {
		return err
	}
	updated, err := deepCopy(current)
	if err != nil {
		return err
	}
	upApp, err := applicationGroup(updated)
	if err != nil {
		return err
	}
	upGroups, err := path(upApp, "groups")
	if err != nil {
		return err
	}
	upGroups[r.MSPID] = org
	for _, name := range policyNames {
		// Only the rule moves: version and mod_policy stay the channel's,
		// and compute_update raises the version.
		have, err := path(upApp, "policies", name)
		if err != nil {
			return err
		}
		want, err := path(targetApp, "policies", name, "policy")
		if err != nil {
			return err
		}
		have["policy"] = want
	}
	original, changed := filepath.Join(work, "original_config.pb"), filepath.Join(work, "updated_config.pb")
	if err := p.encodeProto(ctx, "common.Config", current, original); err != nil {
		return err
	}
	if err := p.encodeProto(ctx, "common.Config", updated, changed); err != nil {
		return err
	}
	updatePB := filepath.Join(work, "config_update.pb")
	if _, err := p.run(ctx, nil, "configtxlator", "compute_update", "--channel_id", p.cfg.Channel,
		"--original", original, "--updated", changed, "--output", updatePB); err != nil {
		return err
	}
	update, err := p.decodeProto(ctx, "common.ConfigUpdate", updatePB)
	if err != nil {
		return err
	}
	// HeaderType CONFIG_UPDATE (2).
	envelope := map[string]any{"payload": map[string]any{
		"header": map[string]any{"channel_header": map[string]any{"channel_id": p.cfg.Channel, "type": 2}},
		"data":   map[string]any{"config_update": update},
	}}
	envPB := filepath.Join(work, "config_update_envelope.pb")
	if err := p.encodeProto(ctx, "common.Envelope", envelope, envPB); err != nil {
		return err
	}
	signers := existing[:len(existing)/2+1]
	for _, s := range signers[:len(signers)-1] {
		if _, err := p.run(ctx, p.adminEnv(s), "peer", "channel", "signconfigtx", "-f", envPB); err != nil {
			return fmt.Errorf("%s's admin signs: %w", s.MSPID, err)
		}
	}
	last := signers[len(signers)-1]
	if _, err := p.run(ctx, p.adminEnv(last), "peer", "channel", "update", "-f", envPB, "-c", p.cfg.Channel,
		"-o", addr(p.OrdererPort), "--tls", "--cafile", p.ordererCA()); err != nil {
		return fmt.Errorf("%s's admin submits: %w", last.MSPID, err)
	}
	// The orderer has accepted it; the new configuration is in effect once
	// its block is cut, which fetching it again proves.
	return p.poll(ctx, time.Minute, "the channel configuration names "+r.MSPID, func() error {
		cfg, err := p.fetchConfig(ctx, work, existing[0])
		if err != nil {
			return err
		}
		if _, err := path(cfg, "channel_group", "groups", "Application", "groups", r.MSPID); err != nil {
			return err
		}
		return nil
	})
}

// targetConfig is the configuration of a channel block configtxgen makes
// from Up's template for p.Regions: where the new organisation and the
// new policies come from.
func (p *plan) targetConfig(ctx context.Context, work string) (map[string]any, error) {
	b, err := render(configtxTmpl, p)
	if err != nil {
		return nil, err
	}
	cfgDir := filepath.Join(work, "configtx")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "configtx.yaml"), b, 0o644); err != nil {
		return nil, err
	}
	block := filepath.Join(work, "target_block.pb")
	if _, err := p.run(ctx, []string{"FABRIC_CFG_PATH=" + cfgDir}, "configtxgen",
		"-profile", profile, "-channelID", p.cfg.Channel, "-outputBlock", block); err != nil {
		return nil, err
	}
	v, err := p.decodeProto(ctx, "common.Block", block)
	if err != nil {
		return nil, err
	}
	return blockConfig(v)
}

func deepCopy(v map[string]any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return decodeJSON(b)
}
