package fabricnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// Region is one regional bureau's Fabric organisation: one peer, one
// chaincode server, one client user.
type Region struct {
	ID    credit.RegionID `json:"id" yaml:"id"`         // such as 440300
	Name  string          `json:"name" yaml:"name"`     // short lower-case name, such as shenzhen; names files and host names
	MSPID string          `json:"msp_id" yaml:"msp_id"` // such as SZMSP
}

// domain is the organisation's DNS-like name in the crypto material. Nothing
// resolves it: every certificate also carries localhost and 127.0.0.1.
func (r Region) domain() string { return r.Name + ".ccnode.local" }

// KnownRegions are the nine Pearl River Delta cities with the MSP ids this
// package gives them; ParseRegions resolves names and ids against them.
func KnownRegions() []Region {
	return []Region{
		{ID: "440300", Name: "shenzhen", MSPID: "SZMSP"},
		{ID: "440100", Name: "guangzhou", MSPID: "GZMSP"},
		{ID: "440400", Name: "zhuhai", MSPID: "ZHMSP"},
		{ID: "440600", Name: "foshan", MSPID: "FSMSP"},
		{ID: "440700", Name: "jiangmen", MSPID: "JMMSP"},
		{ID: "441200", Name: "zhaoqing", MSPID: "ZQMSP"},
		{ID: "441300", Name: "huizhou", MSPID: "HZMSP"},
		{ID: "441900", Name: "dongguan", MSPID: "DGMSP"},
		{ID: "442000", Name: "zhongshan", MSPID: "ZSMSP"},
	}
}

// DefaultRegions are Shenzhen, Guangzhou and Zhuhai: three regions are the
// fewest for which a majority (two) differs from "everyone".
func DefaultRegions() []Region { return KnownRegions()[:3] }

// ParseRegions reads a comma-separated list. Each item is a known region's
// name or id ("shenzhen", "440100"), or a full "id:name:MSPID" triple for a
// region this package does not know.
func ParseRegions(s string) ([]Region, error) {
	var out []Region
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if f := strings.Split(item, ":"); len(f) == 3 {
			out = append(out, Region{ID: credit.RegionID(f[0]), Name: f[1], MSPID: f[2]})
			continue
		} else if len(f) != 1 {
			return nil, fmt.Errorf("region %q: want a name, an id or id:name:MSPID: %w", item, ErrConfig)
		}
		found := false
		for _, r := range KnownRegions() {
			if strings.EqualFold(item, r.Name) || item == string(r.ID) {
				out = append(out, r)
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("region %q is not a known Pearl River Delta region; give it as id:name:MSPID: %w", item, ErrConfig)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no regions in %q: %w", s, ErrConfig)
	}
	return out, nil
}

// ErrConfig marks an invalid Config; the message names the field.
var ErrConfig = errors.New("fabricnet: invalid config")

// Config describes the network Up starts. The zero value of every field but
// Dir has a usable default (see WithDefaults).
type Config struct {
	// Dir is the network folder: crypto material, ledgers, logs, pids and
	// connection files all go here. Up refuses a non-empty folder it did
	// not create.
	Dir string
	// Regions get one peer organisation each; default DefaultRegions.
	Regions []Region
	// Channel is the application channel; default "ccnode".
	Channel string
	// Chaincode is the chaincode (contract) name clients call; default "ccnode".
	Chaincode string
	// ChaincodeLabel labels the chaincode-as-a-service package; default
	// Chaincode + "_1".
	ChaincodeLabel string
	// BatchTimeout is the orderer's batch timeout, the floor of every
	// submit's latency; default 100ms.
	BatchTimeout time.Duration
	// BinDir holds Fabric's binaries; default DefaultBinDir(). Up builds
	// them there when they are missing.
	BinDir string
	// ChaincodeServer is a prebuilt chaincode server binary. When empty, Up
	// runs `go build ChaincodeBuild` in ModuleDir.
	ChaincodeServer string
	// ChaincodeArgs are ChaincodeServer's arguments, such as
	// ["chaincode", "serve"] when the ccnode binary itself serves the
	// contract (an installed binary has no module to build one in).
	ChaincodeArgs []string
	// ChaincodeBuild is the package built into the chaincode server;
	// default "./chaincode/server".
	ChaincodeBuild string
	// ModuleDir is where ChaincodeBuild is built; default the ccnode
	// module root found from the working directory.
	ModuleDir string
	// ChaincodeTLSDisabled makes peers talk to the chaincode servers in
	// clear text. By default the link is mutual TLS with the region's own
	// TLS CA.
	ChaincodeTLSDisabled bool
	// PeersPerRegion is how many peers each region runs (default 1, at
	// most 4). Peer 0 is the anchor peer; the others join the channel, get
	// the contract installed and are listed in the region's connection
	// file as further gateway endpoints, so a node survives one going away.
	PeersPerRegion int
	// ClientTLS makes every peer require a client TLS certificate signed by
	// a channel member's TLS CA (CORE_PEER_TLS_CLIENTAUTHREQUIRED), as a
	// production network does; connection files then name the client
	// user's TLS certificate and key.
	ClientTLS bool
	// SkipReadyCheck leaves out the readiness probe: a transaction
	// submitted through every region's gateway must commit.
	SkipReadyCheck bool
	// Bootstrap, when set, runs once the network is ready (for instance to
	// write the first membership through fabric-gateway). Its failure fails
	// Up, which then stops the network.
	Bootstrap func(ctx context.Context, n *Network) error
	// StopWithParent makes the kernel kill every process Up starts when the
	// calling process dies, so a crashed test binary leaves nothing behind
	// (Linux's parent-death signal; it reaches the started process, not
	// what that forks, and Fabric's processes fork nothing).
	// `ccnode fabric up` leaves it off: its network outlives the command.
	StopWithParent bool
	// Logger receives progress; default discards.
	Logger *slog.Logger
}

// maxPeersPerRegion bounds PeersPerRegion: each peer costs about 150 MiB.
const maxPeersPerRegion = 4

// Defaults named so a reader (and the CLI) can see them.
const (
	DefaultChannel      = "ccnode"
	DefaultChaincode    = "ccnode"
	DefaultBatchTimeout = 100 * time.Millisecond
	DefaultBuild        = "./chaincode/server"
)

// WithDefaults fills every empty field but Dir.
func (c Config) WithDefaults() Config {
	if len(c.Regions) == 0 {
		c.Regions = DefaultRegions()
	}
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	if c.Chaincode == "" {
		c.Chaincode = DefaultChaincode
	}
	if c.ChaincodeLabel == "" {
		c.ChaincodeLabel = c.Chaincode + "_1"
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = DefaultBatchTimeout
	}
	if c.PeersPerRegion == 0 {
		c.PeersPerRegion = 1
	}
	if c.BinDir == "" {
		c.BinDir = DefaultBinDir()
	}
	if c.ChaincodeBuild == "" {
		c.ChaincodeBuild = DefaultBuild
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

var (
	// Fabric's channel names: lower case, start with a letter.
	channelPattern = regexp.MustCompile(`^[a-z][a-z0-9.-]{0,248}$`)
	// Names end up in host names, file names and package labels.
	namePattern  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
	mspPattern   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.-]{0,63}$`)
	labelPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)
)

// Validate names the first bad field.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, args...), ErrConfig)
	}
	if c.Dir == "" {
		return bad("Dir", "empty")
	}
	if len(c.Regions) == 0 {
		return bad("Regions", "empty")
	}
	ids, names, msps := map[credit.RegionID]bool{}, map[string]bool{}, map[string]bool{}
	for i, r := range c.Regions {
		field := fmt.Sprintf("Regions[%d]", i)
		if err := credit.ValidateRegionID(r.ID); err != nil {
			return bad(field+".ID", "%v", err)
		}
		if !namePattern.MatchString(r.Name) || r.Name == auditorName {
			return bad(field+".Name", "%q: want a short lower-case name such as shenzhen (not %s)", r.Name, auditorName)
		}
		if !mspPattern.MatchString(r.MSPID) || r.MSPID == ordererMSP || r.MSPID == AuditorMSP {
			return bad(field+".MSPID", "%q: want an MSP id such as SZMSP (not %s or %s)", r.MSPID, ordererMSP, AuditorMSP)
		}
		if ids[r.ID] || names[r.Name] || msps[r.MSPID] {
			return bad(field, "%s/%s/%s repeats another region's id, name or MSP id", r.ID, r.Name, r.MSPID)
		}
		ids[r.ID], names[r.Name], msps[r.MSPID] = true, true, true
	}
	if !channelPattern.MatchString(c.Channel) {
		return bad("Channel", "%q: want lower case letters, digits, dots and dashes", c.Channel)
	}
	if !labelPattern.MatchString(c.Chaincode) {
		return bad("Chaincode", "%q", c.Chaincode)
	}
	if !labelPattern.MatchString(c.ChaincodeLabel) {
		return bad("ChaincodeLabel", "%q", c.ChaincodeLabel)
	}
	if c.PeersPerRegion < 1 || c.PeersPerRegion > maxPeersPerRegion {
		return bad("PeersPerRegion", "%d: want 1 to %d", c.PeersPerRegion, maxPeersPerRegion)
	}
	if c.BatchTimeout < time.Millisecond || c.BatchTimeout > time.Minute {
		return bad("BatchTimeout", "%s: want between 1ms and 1m", c.BatchTimeout)
	}
	return nil
}
