package consortium

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/atomicfile"
	"github.com/prdcredit/ccnode/node"
)

// CAFileName is the consortium's development TLS CA certificate, in
// Options.Dir/tls: the one file a bank passes as `ccnode query --ca-file`
// to trust every region's bank API.
const CAFileName = "ca.crt"

// devTLS is the consortium's development TLS: one CA, made afresh at
// every Start and never written to disk (its key lives only in this
// process), that issues each region's bank API certificate for the
// loopback addresses. One CA file then trusts every node.
type devTLS struct {
	dir    string // ca.crt and each region's <id>.crt and <id>.key
	caFile string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	client *http.Client
}

// newDevTLS makes the CA and writes its certificate to dir/ca.crt,
// replacing the one of an earlier run in a kept folder.
func newDevTLS(dir string, now time.Time) (*devTLS, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("development TLS: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "ccnode consortium development CA", Organization: []string{"ccnode development"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(node.DevTLSValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("development TLS CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	d := &devTLS{dir: dir, caFile: filepath.Join(dir, CAFileName), ca: ca, caKey: key, pool: x509.NewCertPool()}
	d.pool.AddCert(ca)
	if err := atomicfile.ReplaceBytes(d.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("development TLS CA: %w", err)
	}
	// One transport for every client of the consortium, so connections
	// (and their handshakes) are reused across calls.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = d.clientConfig()
	d.client = &http.Client{Transport: tr}
	return d, nil
}

// clientConfig trusts the consortium's CA only.
func (d *devTLS) clientConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: d.pool}
}

// issue writes a region's bank API certificate (valid for localhost,
// 127.0.0.1 and ::1, where the consortium's nodes listen) and its key
// (mode 0600, as `ccnode run` requires) and returns their paths.
func (d *devTLS) issue(region credit.RegionID, now time.Time) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	sn, err := serial()
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "ccnode " + string(region), Organization: []string{"ccnode development"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(node.DevTLSValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, d.ca, &key.PublicKey, d.caKey)
	if err != nil {
		return "", "", fmt.Errorf("region %s: TLS certificate: %w", region, err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(d.dir, string(region)+".crt"), filepath.Join(d.dir, string(region)+".key")
	if err := atomicfile.ReplaceBytes(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		return "", "", fmt.Errorf("region %s: TLS key: %w", region, err)
	}
	if err := atomicfile.ReplaceBytes(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", fmt.Errorf("region %s: TLS certificate: %w", region, err)
	}
	return certFile, keyFile, nil
}

// serial is a random 127-bit certificate serial number.
func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
