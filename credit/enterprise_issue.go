package credit

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"
)

// NewAuthorityCert makes a self-signed CA certificate for an enterprise
// identity authority, for trials, tests and the demo; a real authority's
// certificate comes from its own PKI and is registered the same way.
func NewAuthorityCert(name string, key crypto.Signer, notBefore, notAfter time.Time) ([]byte, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{name}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("authority certificate %s: %w", Quote(name), err)
	}
	return der, nil
}

// IssueEnterpriseCert certifies an enterprise's signing key pub for uscc:
// the certificate's subject serialNumber is the USCC (what
// VerifyEnterpriseChain matches against a consent's subject).
func IssueEnterpriseCert(caDER []byte, caKey crypto.Signer, uscc USCC, name string, pub crypto.PublicKey, notBefore, notAfter time.Time) ([]byte, error) {
	if _, err := ParseUSCC(string(uscc)); err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("authority certificate: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, SerialNumber: string(uscc)},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("enterprise certificate for %s: %w", uscc, err)
	}
	return der, nil
}

func randomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}
