package fabricnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// UpgradeConfig is a contract upgrade on a running network.
type UpgradeConfig struct {
	// Server and Args start each region's new chaincode server (as
	// Config.ChaincodeServer and ChaincodeArgs): the new contract build.
	Server string
	Args   []string
	// Version is the new definition's version; default the new sequence
	// as "<sequence>.0". Label is the new package label; default
	// "<chaincode>_<sequence>".
	Version, Label string
}

// Upgrade moves the network in dir to a new contract definition with
// Fabric's lifecycle, while the old contract keeps serving: for every
// region a new chaincode-as-a-service package (new label, a new server on
// a new port) is installed on each of its peers and the new server
// started; every region's admin approves the definition at the next
// sequence for its own package; one admin commits it, which the channel's
// LifecycleEndorsement (a majority of regions' peers) must endorse. The
// endorsement policy is the channel's (a majority of regions), unchanged.
// Peers switch to the new servers at the commit; the old servers keep
// running until Down. It returns once a submit through every region's
// gateway commits on the new definition, and rewrites network.json.
func Upgrade(ctx context.Context, dir string, uc UpgradeConfig) (*Network, error) {
	n, err := Load(dir)
	if err != nil {
		return nil, err
	}
	if uc.Server == "" {
		return nil, fmt.Errorf("fabricnet: upgrade: no chaincode server binary: %w", ErrConfig)
	}
	p, err := n.plan(Config{})
	if err != nil {
		return nil, err
	}
	seq, err := p.committedSequence(ctx)
	if err != nil {
		return nil, fmt.Errorf("fabricnet: upgrade: %w", err)
	}
	next := seq + 1
	if uc.Version == "" {
		uc.Version = strconv.Itoa(next) + ".0"
	}
	if uc.Label == "" {
		uc.Label = fmt.Sprintf("%s_%d", n.Chaincode, next)
	}
	if !labelPattern.MatchString(uc.Label) {
		return nil, fmt.Errorf("fabricnet: upgrade: label %q: %w", uc.Label, ErrConfig)
	}
	held, ports, err := reservePorts(len(p.Regions))
	if err != nil {
		return nil, err
	}
	defer held.releaseAll()
	p.ports = held
	for i := range p.Regions {
		p.Regions[i].CCServerPort = ports[i]
	}
	orderer := []string{"-o", n.Orderer.Endpoint, "--tls", "--cafile", n.Orderer.TLSCACert}
	ids := make([]string, len(p.Regions))
	idx := make([]int, len(p.Regions))
	for i := range idx {
		idx[i] = i
	}
	seqArg := strconv.Itoa(next)
	if err := parallel(idx, func(i int) error {
		r := p.Regions[i]
		id, err := p.installAndApprove(ctx, r, ccRelease{label: uc.Label,
			pkgPath: filepath.Join(n.Dir, "chaincode", fmt.Sprintf("%s-%s.tar.gz", r.Name, uc.Label)),
			process: fmt.Sprintf("ccserver-%s-%d", r.Name, next), server: uc.Server, args: uc.Args,
			version: uc.Version, sequence: seqArg})
		ids[i] = id
		return err
	}); err != nil {
		return nil, fmt.Errorf("fabricnet: upgrade: %w", err)
	}
	args := append([]string{"lifecycle", "chaincode", "commit", "--channelID", n.Channel,
		"--name", n.Chaincode, "--version", uc.Version, "--sequence", seqArg}, orderer...)
	for _, r := range p.Regions {
		args = append(args, "--peerAddresses", addr(r.PeerPort), "--tlsRootCertFiles", p.peerCA(r))
	}
	if err := p.poll(ctx, time.Minute, "definition sequence "+seqArg+" commits", func() error {
		_, err := p.run(ctx, p.adminEnv(p.Regions[0]), "peer", args...)
		return err
	}); err != nil {
		return nil, fmt.Errorf("fabricnet: upgrade: %w", err)
	}
	for i, r := range p.Regions {
		pe := n.Peers[r.ID]
		pe.ChaincodeServer, pe.PackageID = addr(r.CCServerPort), ids[i]
		n.Peers[r.ID] = pe
		for j := range n.ExtraPeers[r.ID] {
			n.ExtraPeers[r.ID][j].ChaincodeServer, n.ExtraPeers[r.ID][j].PackageID = addr(r.CCServerPort), ids[i]
		}
	}
	if err := n.save(); err != nil {
		return nil, err
	}
	if err := n.waitReady(ctx, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("fabricnet: upgrade: %w", err)
	}
	return n, nil
}

// plan rebuilds, from network.json, what a change to the running network
// needs of Up's plan: folders, the orderer and every region's peer ports.
// cfg supplies what network.json does not hold (StopWithParent, Logger).
func (n *Network) plan(cfg Config) (*plan, error) {
	cfg.Dir, cfg.Regions, cfg.Channel, cfg.Chaincode = n.Dir, n.Regions, n.Channel, n.Chaincode
	cfg.ClientTLS, cfg.ChaincodeTLSDisabled = n.ClientTLS, n.ChaincodeTLSDisabled
	p := &plan{cfg: cfg.WithDefaults(), dir: n.Dir, bins: n.BinDir, OrdererMSP: ordererMSP, OrdererDomain: ordererDomain,
		Auditor: auditorPlan{MSPID: AuditorMSP, Domain: auditorName + ".ccnode.local"},
		Crypto:  filepath.Join(n.Dir, "crypto"), BatchTimeout: DefaultBatchTimeout.String()}
	p.OrdererTLS = filepath.Join(p.Crypto, "ordererOrganizations", ordererDomain, "orderers", "orderer."+ordererDomain, "tls")
	var err error
	if p.OrdererPort, err = portOf(n.Orderer.Endpoint); err != nil {
		return nil, err
	}
	for _, r := range n.Regions {
		pr, err := portOf(n.Peers[r.ID].Endpoint)
		if err != nil {
			return nil, err
		}
		rp := regionPlan{Region: r, Domain: r.domain(), PeerPort: pr}
		for i, e := range n.ExtraPeers[r.ID] {
			port, err := portOf(e.Endpoint)
			if err != nil {
				return nil, err
			}
			rp.Extra = append(rp.Extra, peerPlan{Index: i + 1, PeerPort: port})
		}
		p.Regions = append(p.Regions, rp)
	}
	return p, nil
}

// Sequence is the contract definition's committed sequence, as region
// 0's peer reports it.
func (n *Network) Sequence(ctx context.Context) (int, error) {
	if len(n.Regions) == 0 {
		return 0, errors.New("fabricnet: no region")
	}
	out, err := n.PeerCLI(ctx, n.Regions[0].ID, "lifecycle", "chaincode", "querycommitted",
		"--channelID", n.Channel, "--name", n.Chaincode, "-O", "json")
	if err != nil {
		return 0, err
	}
	return parseSequence(out)
}

func (p *plan) committedSequence(ctx context.Context) (int, error) {
	def, err := p.committedDefinition(ctx)
	return def.Sequence, err
}

// definition is the committed contract definition, as querycommitted
// prints it.
type definition struct {
	Sequence int    `json:"sequence"`
	Version  string `json:"version"`
}

func (p *plan) committedDefinition(ctx context.Context) (definition, error) {
	out, err := p.run(ctx, p.adminEnv(p.Regions[0]), "peer", "lifecycle", "chaincode", "querycommitted",
		"--channelID", p.cfg.Channel, "--name", p.cfg.Chaincode, "-O", "json")
	if err != nil {
		return definition{}, err
	}
	return parseDefinition(out)
}

func parseSequence(out []byte) (int, error) {
	def, err := parseDefinition(out)
	return def.Sequence, err
}

func parseDefinition(out []byte) (definition, error) {
	var def definition
	// The CLI's log lines come first (stdout and stderr are combined);
	// the JSON starts at the last line that is a lone "{".
	body := out
	if i := strings.LastIndex(string(out), "\n{\n"); i >= 0 {
		body = out[i+1:]
	}
	if err := json.Unmarshal(body, &def); err != nil || def.Sequence < 1 {
		return definition{}, fmt.Errorf("fabricnet: querycommitted: no sequence in %q", tail(out, 5))
	}
	return def, nil
}

func portOf(hostport string) (int, error) {
	_, ps, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0, fmt.Errorf("fabricnet: %q: %w", hostport, err)
	}
	return strconv.Atoi(ps)
}
