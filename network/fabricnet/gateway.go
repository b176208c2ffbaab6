package fabricnet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-gateway/pkg/identity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"gopkg.in/yaml.v3"

	"github.com/prdcredit/ccnode/credit"
)

// Gateway is what a fabric-gateway client of one region needs. Its YAML
// form is the connection file <dir>/connection/<region id>.yaml, which
// network/fabric.LoadConfig reads.
type Gateway struct {
	Endpoint  string   `yaml:"endpoint" json:"endpoint"`                       // the region's peer, 127.0.0.1:port; its certificate names 127.0.0.1, so no server name override
	Endpoints []string `yaml:"endpoints,omitempty" json:"endpoints,omitempty"` // the region's further peers (PeersPerRegion), for failover
	TLSCACert string   `yaml:"tls_ca_cert" json:"tls_ca_cert"`                 // PEM file: the region's TLS CA
	// The client user's TLS certificate and key, when peers require
	// client TLS (Config.ClientTLS).
	TLSClientCert string `yaml:"tls_client_cert,omitempty" json:"tls_client_cert,omitempty"`
	TLSClientKey  string `yaml:"tls_client_key,omitempty" json:"tls_client_key,omitempty"`
	MSPID         string `yaml:"msp_id" json:"msp_id"`
	CertPath      string `yaml:"cert_path" json:"cert_path"` // PEM file: the region's client user (User1)
	KeyPath       string `yaml:"key_path" json:"key_path"`   // PEM file: its private key
	Channel       string `yaml:"channel" json:"channel"`
	Chaincode     string `yaml:"chaincode" json:"chaincode"`
}

// ConnectionDir is where Up writes the connection files.
func ConnectionDir(dir string) string { return filepath.Join(dir, "connection") }

// writeConnections writes every region's connection file and the network's
// description (network.json), and returns the Network.
func (p *plan) writeConnections() (*Network, error) {
	n := &Network{
		Dir: p.dir, Channel: p.cfg.Channel, Chaincode: p.cfg.Chaincode, BinDir: p.bins,
		ClientTLS: p.cfg.ClientTLS, ChaincodeTLSDisabled: p.cfg.ChaincodeTLSDisabled,
		Gateways: map[credit.RegionID]Gateway{}, Peers: map[credit.RegionID]Peer{},
		Orderer: OrdererNode{Endpoint: addr(p.OrdererPort), AdminEndpoint: addr(p.AdminPort),
			OperationsEndpoint: addr(p.OrdererOps), TLSCACert: p.ordererCA()},
	}
	if err := os.MkdirAll(ConnectionDir(p.dir), 0o755); err != nil {
		return nil, err
	}
	for _, r := range p.Regions {
		if err := p.addRegionTo(n, r, "fabricnet.Up"); err != nil {
			return nil, err
		}
	}
	// The auditor reaches the channel through the first region's peer: it
	// has none, and any peer's gateway serves any channel member.
	first := p.Regions[0]
	user := filepath.Join(p.Crypto, "peerOrganizations", p.Auditor.Domain, "users", "User1@"+p.Auditor.Domain, "msp")
	n.Auditor = Gateway{
		Endpoint:  addr(first.PeerPort),
		TLSCACert: p.peerCA(first),
		MSPID:     p.Auditor.MSPID,
		CertPath:  filepath.Join(user, "signcerts", "User1@"+p.Auditor.Domain+"-cert.pem"),
		KeyPath:   filepath.Join(user, "keystore", "priv_sk"),
		Channel:   p.cfg.Channel,
		Chaincode: p.cfg.Chaincode,
	}
	n.Auditor.TLSClientCert, n.Auditor.TLSClientKey = p.clientTLS(p.Auditor.Domain)
	head := fmt.Sprintf("# Auditor (%s): reads through region %s's peer; its transactions are refused. Written by fabricnet.Up.\n", p.Auditor.MSPID, first.ID)
	n.AuditorFile = filepath.Join(ConnectionDir(p.dir), auditorName+".yaml")
	if err := writeGateway(n.AuditorFile, head, n.Auditor); err != nil {
		return nil, err
	}
	if err := n.save(); err != nil {
		return nil, err
	}
	return n, nil
}

// addRegionTo writes region r's connection file and enters r, its
// gateway and its peers in n. writer names who wrote the file.
func (p *plan) addRegionTo(n *Network, r regionPlan, writer string) error {
	user := filepath.Join(p.Crypto, "peerOrganizations", r.Domain, "users", "User1@"+r.Domain, "msp")
	g := Gateway{
		Endpoint:  addr(r.PeerPort),
		Endpoints: r.extraEndpoints(),
		TLSCACert: p.peerCA(r),
		MSPID:     r.MSPID,
		CertPath:  filepath.Join(user, "signcerts", "User1@"+r.Domain+"-cert.pem"),
		KeyPath:   filepath.Join(user, "keystore", "priv_sk"),
		Channel:   p.cfg.Channel,
		Chaincode: p.cfg.Chaincode,
	}
	g.TLSClientCert, g.TLSClientKey = p.clientTLS(r.Domain)
	head := fmt.Sprintf("# Region %s (%s): fabric-gateway connection to its peer. Written by %s.\n", r.ID, r.Name, writer)
	path := filepath.Join(ConnectionDir(p.dir), string(r.ID)+".yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := writeGateway(path, head, g); err != nil {
		return err
	}
	n.Regions = append(n.Regions, r.Region)
	n.Gateways[r.ID] = g
	n.GatewayFiles = append(n.GatewayFiles, path)
	n.Peers[r.ID] = Peer{Endpoint: addr(r.PeerPort), OperationsEndpoint: addr(r.OpsPort), TLSCACert: p.peerCA(r),
		AdminMSPDir: p.adminMSP(r), ChaincodeServer: addr(r.CCServerPort), PackageID: p.packageIDs[r.ID]}
	for _, pp := range r.Extra {
		if n.ExtraPeers == nil {
			n.ExtraPeers = map[credit.RegionID][]Peer{}
		}
		n.ExtraPeers[r.ID] = append(n.ExtraPeers[r.ID], Peer{Endpoint: addr(pp.PeerPort), OperationsEndpoint: addr(pp.OpsPort),
			TLSCACert: p.peerCA(r), AdminMSPDir: p.adminMSP(r), ChaincodeServer: addr(r.CCServerPort), PackageID: p.packageIDs[r.ID],
			Process: PeerProcess(r.Name, pp.Index)})
	}
	return nil
}

// save writes n to <dir>/network.json, which Load reads.
func (n *Network) save() error {
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.Dir, stateFile), b, 0o644)
}

// extraEndpoints are the addresses of the region's peers after peer 0.
func (r regionPlan) extraEndpoints() []string {
	var out []string
	for _, pp := range r.Extra {
		out = append(out, addr(pp.PeerPort))
	}
	return out
}

// clientTLS is the client user's TLS certificate and key in domain, when
// peers require client TLS; else empty.
func (p *plan) clientTLS(domain string) (cert, key string) {
	if !p.cfg.ClientTLS {
		return "", ""
	}
	dir := filepath.Join(p.Crypto, "peerOrganizations", domain, "users", "User1@"+domain, "tls")
	return filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
}

// writeGateway writes g as a connection file under a comment line.
func writeGateway(path, head string, g Gateway) error {
	b, err := yaml.Marshal(g)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(head), b...), 0o644)
}

// Connect opens a fabric-gateway connection as g's client user. Close the
// returned gateway, then the gRPC connection.
func (g Gateway) Connect() (*client.Gateway, *grpc.ClientConn, error) {
	caPEM, err := os.ReadFile(g.TLSCACert)
	if err != nil {
		return nil, nil, fmt.Errorf("fabricnet: gateway TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("fabricnet: no certificate in %s", g.TLSCACert)
	}
	certPEM, err := os.ReadFile(g.CertPath)
	if err != nil {
		return nil, nil, fmt.Errorf("fabricnet: client certificate: %w", err)
	}
	cert, err := identity.CertificateFromPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("fabricnet: client certificate %s: %w", g.CertPath, err)
	}
	id, err := identity.NewX509Identity(g.MSPID, cert)
	if err != nil {
		return nil, nil, fmt.Errorf("fabricnet: client identity: %w", err)
	}
	keyPEM, err := os.ReadFile(g.KeyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("fabricnet: client key: %w", err)
	}
	key, err := identity.PrivateKeyFromPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("fabricnet: client key %s: %w", g.KeyPath, err)
	}
	sign, err := identity.NewPrivateKeySign(key)
	if err != nil {
		return nil, nil, fmt.Errorf("fabricnet: client key: %w", err)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if g.TLSClientCert != "" {
		pair, err := tls.LoadX509KeyPair(g.TLSClientCert, g.TLSClientKey)
		if err != nil {
			return nil, nil, fmt.Errorf("fabricnet: client TLS certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	conn, err := grpc.NewClient(g.Endpoint, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return nil, nil, fmt.Errorf("fabricnet: dial %s: %w", g.Endpoint, err)
	}
	gw, err := client.Connect(id, client.WithSign(sign), client.WithClientConnection(conn),
		client.WithEndorseTimeout(15*time.Second), client.WithSubmitTimeout(15*time.Second),
		client.WithCommitStatusTimeout(30*time.Second), client.WithEvaluateTimeout(10*time.Second))
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("fabricnet: gateway %s: %w", g.Endpoint, err)
	}
	return gw, conn, nil
}

// systemContract is the contract every contractapi chaincode serves next
// to its own; its GetMetadata reads nothing and writes nothing.
const systemContract = "org.hyperledger.fabric"

// ProbeSubmit submits GetMetadata of the contract API's system contract as
// a transaction through g and waits for it to commit. It writes nothing,
// yet needs what every real submit needs: discovery finding a majority of
// regions' peers, their endorsements, ordering and a valid commit. It works
// with any chaincode built on fabric-contract-api-go.
func (g Gateway) ProbeSubmit(ctx context.Context) error { return g.probe(ctx, true) }

// ProbeEvaluate evaluates GetMetadata of the contract API's system
// contract through g: a read, which every channel Reader may make.
func (g Gateway) ProbeEvaluate(ctx context.Context) error { return g.probe(ctx, false) }

func (g Gateway) probe(ctx context.Context, submit bool) error {
	gw, conn, err := g.Connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	defer gw.Close()
	contract := gw.GetNetwork(g.Channel).GetContractWithName(g.Chaincode, systemContract)
	what := "evaluate"
	if submit {
		what = "submit"
		_, err = contract.SubmitWithContext(ctx, "GetMetadata")
	} else {
		_, err = contract.EvaluateWithContext(ctx, "GetMetadata")
	}
	if err != nil {
		return fmt.Errorf("fabricnet: probe %s through %s (%s): %w", what, g.Endpoint, g.MSPID, err)
	}
	return nil
}

// WaitReady calls submit until it succeeds (a transaction committed) or
// ctx ends, pausing 100 ms to 1 s between attempts. A fresh network
// refuses submits for a few seconds ("no combination of peers can be
// derived which satisfy the endorsement policy") until gossip has every
// peer know the others; a commit is the only proof that it is over.
func WaitReady(ctx context.Context, submit func(context.Context) error) error {
	return poll(ctx, 0, "fabric network ready", func() error { return submit(ctx) })
}

// waitReady waits until a probe submit commits through every region's
// gateway (each region's peer must see a majority of the others), then
// checks that the auditor can evaluate.
func (n *Network) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	// Every gateway endpoint, the regions' further peers included: a
	// failover to a peer that cannot endorse yet would not help.
	var gws []Gateway
	for _, r := range n.Regions {
		gws = append(gws, n.Gateways[r.ID].all()...)
	}
	if err := parallel(gws, func(g Gateway) error {
		return WaitReady(ctx, g.ProbeSubmit)
	}); err != nil {
		return err
	}
	// The auditor reads: a channel policy that shut it out would show here,
	// not in the first audit.
	return n.Auditor.ProbeEvaluate(ctx)
}

// Gateway returns the gateway of a region.
func (n *Network) Gateway(region credit.RegionID) (Gateway, error) {
	g, ok := n.Gateways[region]
	if !ok {
		return Gateway{}, fmt.Errorf("%w: %s in %s", ErrNoRegion, region, n.Dir)
	}
	return g, nil
}

// all is g and one gateway per further endpoint of its region.
func (g Gateway) all() []Gateway {
	out := []Gateway{g}
	for _, ep := range g.Endpoints {
		other := g
		other.Endpoint, other.Endpoints = ep, nil
		out = append(out, other)
	}
	return out
}
