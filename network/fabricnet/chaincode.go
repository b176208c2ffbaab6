package fabricnet

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// chaincodeServer returns the chaincode server binary: the prebuilt one
// the Config names, or ChaincodeBuild compiled from ModuleDir into the
// network folder (so the binary running is the one this Up built).
func chaincodeServer(ctx context.Context, cfg Config, dir string) (string, error) {
	if cfg.ChaincodeServer != "" {
		abs, err := filepath.Abs(cfg.ChaincodeServer)
		if err != nil {
			return "", fmt.Errorf("chaincode server: %w", err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return "", fmt.Errorf("chaincode server: %w", err)
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("chaincode server %s is not an executable file: %w", abs, ErrConfig)
		}
		return abs, nil
	}
	mod, err := chaincodeModule(cfg)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "bin", "ccserver")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, cfg.ChaincodeBuild)
	cmd.Dir = mod
	cmd.Env = childEnv()
	// Cancelling must stop the compilers go build forks, too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", cfg.ChaincodeBuild, mod, err, tail(b, 20))
	}
	return out, nil
}

// chaincodeModule is the module the chaincode server is built in.
func chaincodeModule(cfg Config) (string, error) {
	mod := cfg.ModuleDir
	if mod == "" {
		mod = moduleRoot()
	}
	if mod == "" {
		return "", fmt.Errorf("no ccnode module above the working directory %s to build the chaincode server (%s) in: name a chaincode server binary (Config.ChaincodeServer) or the module (Config.ModuleDir): %w",
			wd(), cfg.ChaincodeBuild, ErrConfig)
	}
	return mod, nil
}

func wd() string {
	d, err := os.Getwd()
	if err != nil {
		return "(unknown)"
	}
	return d
}

// connection is the connection.json a peer's ccaas builder hands the peer:
// where the region's chaincode server listens and how to reach it.
type connection struct {
	Address            string `json:"address"`
	DialTimeout        string `json:"dial_timeout"`
	TLSRequired        bool   `json:"tls_required"`
	ClientAuthRequired bool   `json:"client_auth_required"`
	ClientKey          string `json:"client_key,omitempty"`  // PEM: the peer's key when it dials
	ClientCert         string `json:"client_cert,omitempty"` // PEM
	RootCert           string `json:"root_cert,omitempty"`   // PEM: CA of the server's certificate
}

// ccaasPackage is a chaincode-as-a-service package: metadata.json and a
// code.tar.gz holding only connection.json. Each region's package names its
// own server, so each region gets its own package id and approves that.
func ccaasPackage(label string, conn connection) ([]byte, error) {
	connJSON, err := json.Marshal(conn)
	if err != nil {
		return nil, err
	}
	code, err := tarGz([]tarFile{{"connection.json", connJSON}})
	if err != nil {
		return nil, err
	}
	meta, err := json.Marshal(map[string]string{"type": "ccaas", "label": label})
	if err != nil {
		return nil, err
	}
	return tarGz([]tarFile{{"metadata.json", meta}, {"code.tar.gz", code}})
}

// packageID is how the peer names an installed package.
func packageID(label string, pkg []byte) string {
	return fmt.Sprintf("%s:%x", label, sha256.Sum256(pkg))
}

type tarFile struct {
	name string
	body []byte
}

// tarGz writes files with fixed times and modes, so the same inputs give
// the same package id.
func tarGz(files []tarFile) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func readPEM(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// ccTLS is the chaincode server's TLS pair, issued by the region's TLS CA
// (cryptogen's "ccserver" node), and that CA.
func (p *plan) ccTLS(r regionPlan) (key, cert, ca string) {
	tls := filepath.Join(p.Crypto, "peerOrganizations", r.Domain, "peers", "ccserver."+r.Domain, "tls")
	return filepath.Join(tls, "server.key"), filepath.Join(tls, "server.crt"), filepath.Join(tls, "ca.crt")
}

// connectionFor is region r's connection.json: mutual TLS by default, the
// peer presenting its own TLS certificate, which the server accepts because
// the region's TLS CA issued it.
func (p *plan) connectionFor(r regionPlan) (connection, error) {
	c := connection{Address: addr(r.CCServerPort), DialTimeout: "10s"}
	if p.cfg.ChaincodeTLSDisabled {
		return c, nil
	}
	_, _, ca := p.ccTLS(r)
	peerTLS := filepath.Join(r.peerNode(p.Crypto), "tls")
	var err error
	c.TLSRequired, c.ClientAuthRequired = true, true
	if c.RootCert, err = readPEM(ca); err != nil {
		return c, err
	}
	if c.ClientKey, err = readPEM(filepath.Join(peerTLS, "server.key")); err != nil {
		return c, err
	}
	if c.ClientCert, err = readPEM(filepath.Join(peerTLS, "server.crt")); err != nil {
		return c, err
	}
	return c, nil
}

func (p *plan) serverEnv(r regionPlan, packageID string) []string {
	env := []string{"CHAINCODE_SERVER_ADDRESS=" + addr(r.CCServerPort), "CHAINCODE_ID=" + packageID}
	if p.cfg.ChaincodeTLSDisabled {
		return append(env, "CHAINCODE_TLS_DISABLED=true")
	}
	key, cert, ca := p.ccTLS(r)
	return append(env, "CHAINCODE_TLS_KEY="+key, "CHAINCODE_TLS_CERT="+cert, "CHAINCODE_CLIENT_CA_CERT="+ca)
}

// ccRelease is one region's chaincode-as-a-service release: its package
// label and file, the server that serves it (process name, binary,
// arguments) and the definition the region approves for it.
type ccRelease struct {
	label, pkgPath, process, server string
	args                            []string
	version, sequence               string
}

// installAndApprove packages the contract for region r as rel says,
// installs it on each of r's peers, starts r's chaincode server and
// approves the definition for r's own package id, which it returns. Up,
// Upgrade and AddRegion all release a region's contract this way.
func (p *plan) installAndApprove(ctx context.Context, r regionPlan, rel ccRelease) (string, error) {
	conn, err := p.connectionFor(r)
	if err != nil {
		return "", fmt.Errorf("%s: %w", r.Name, err)
	}
	pkg, err := ccaasPackage(rel.label, conn)
	if err != nil {
		return "", fmt.Errorf("%s: %w", r.Name, err)
	}
	if err := os.MkdirAll(filepath.Dir(rel.pkgPath), 0o755); err != nil {
		return "", err
	}
	// The package holds the peer's TLS key: owner only.
	if err := os.WriteFile(rel.pkgPath, pkg, 0o600); err != nil {
		return "", err
	}
	// The package id is the label and the SHA-256 of the package bytes;
	// the peer says which id it installed, and they must agree.
	id := packageID(rel.label, pkg)
	// The region's further peers run the same package: the same chaincode
	// server serves them all.
	for _, pp := range r.peers() {
		out, err := p.run(ctx, p.adminEnvAt(r, addr(pp.PeerPort)), "peer", "lifecycle", "chaincode", "install", rel.pkgPath)
		if err != nil {
			return "", fmt.Errorf("%s peer %d: %w", r.Name, pp.Index, err)
		}
		if !strings.Contains(string(out), id) {
			return "", fmt.Errorf("%s peer %d: the peer did not report installing %s:\n%s", r.Name, pp.Index, id, tail(out, 5))
		}
	}
	// The server must be told its package id, so it starts after install.
	pid, err := p.launch(rel.process, rel.server, rel.args, p.serverEnv(r, id), r.CCServerPort)
	if err != nil {
		return "", err
	}
	if err := p.waitListening(ctx, "chaincode server "+rel.process, pid, r.CCServerPort); err != nil {
		return "", err
	}
	args := []string{"lifecycle", "chaincode", "approveformyorg", "--channelID", p.cfg.Channel, "--name", p.cfg.Chaincode,
		"--version", rel.version, "--package-id", id, "--sequence", rel.sequence,
		"-o", addr(p.OrdererPort), "--tls", "--cafile", p.ordererCA()}
	if err := p.poll(ctx, 2*time.Minute, r.MSPID+" approves sequence "+rel.sequence, func() error {
		_, err := p.run(ctx, p.adminEnv(r), "peer", args...)
		return err
	}); err != nil {
		return "", err
	}
	return id, nil
}

// deployChaincode packages, installs and approves the contract for every
// region (in parallel: each region talks to its own peer), starts each
// region's chaincode server, commits the definition and waits until every
// peer has it.
func (p *plan) deployChaincode(ctx context.Context, server string) error {
	p.packageIDs = map[credit.RegionID]string{}
	ids := make([]string, len(p.Regions))
	orderer := []string{"-o", addr(p.OrdererPort), "--tls", "--cafile", p.ordererCA()}
	idx := make([]int, len(p.Regions))
	for i := range idx {
		idx[i] = i
	}
	if err := parallel(idx, func(i int) error {
		r := p.Regions[i]
		id, err := p.installAndApprove(ctx, r, ccRelease{label: p.cfg.ChaincodeLabel,
			pkgPath: filepath.Join(p.dir, "chaincode", r.Name+".tar.gz"), process: "ccserver-" + r.Name,
			server: server, args: p.cfg.ChaincodeArgs, version: ccVersion, sequence: ccSequence})
		ids[i] = id
		return err
	}); err != nil {
		return err
	}
	for i, r := range p.Regions {
		p.packageIDs[r.ID] = ids[i]
	}
	args := append([]string{"lifecycle", "chaincode", "commit", "--channelID", p.cfg.Channel,
		"--name", p.cfg.Chaincode, "--version", ccVersion, "--sequence", ccSequence}, orderer...)
	for _, r := range p.Regions {
		args = append(args, "--peerAddresses", addr(r.PeerPort), "--tlsRootCertFiles", p.peerCA(r))
	}
	if err := p.poll(ctx, time.Minute, "contract definition commits", func() error {
		_, err := p.run(ctx, p.adminEnv(p.Regions[0]), "peer", args...)
		return err
	}); err != nil {
		return err
	}
	// A probe submit through every region's gateway proves the same and
	// more; only without it is each peer asked.
	if !p.cfg.SkipReadyCheck {
		return nil
	}
	return parallel(p.Regions, func(r regionPlan) error {
		return p.poll(ctx, time.Minute, r.Name+"'s peer has the committed contract", func() error {
			_, err := p.run(ctx, p.adminEnv(r), "peer", "lifecycle", "chaincode", "querycommitted",
				"--channelID", p.cfg.Channel, "--name", p.cfg.Chaincode)
			return err
		})
	})
}
