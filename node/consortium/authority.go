package consortium

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// Authority is a region's development enterprise identity authority: the
// CA that certifies the signing keys of enterprises registered in the
// region's divisions, as an electronic business licence authority does
// for a real deployment (whose CA certificate is registered the same way).
type Authority struct {
	Key ed25519.PrivateKey
	// Record is what the region registers on the ledger.
	Record credit.IdentityAuthority
}

// authorityValidity is how long a development authority's certificate
// lasts; enterprises' certificates last enterpriseValidity.
const (
	authorityValidity  = 10 * 365 * 24 * time.Hour
	enterpriseValidity = 2 * 365 * 24 * time.Hour
)

// NewAuthority makes a development authority of region vouching for its
// divisions, with a fresh key and a self-signed CA certificate.
func NewAuthority(region credit.Region, now time.Time) (*Authority, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := credit.NewAuthorityCert(authorityName(region), key, now.Add(-time.Hour), now.Add(authorityValidity))
	if err != nil {
		return nil, err
	}
	return authorityOf(region, key, der)
}

func authorityName(region credit.Region) string {
	return region.Name + " development identity authority"
}

func authorityOf(region credit.Region, key ed25519.PrivateKey, der []byte) (*Authority, error) {
	a := &Authority{Key: key, Record: credit.IdentityAuthority{ID: credit.AuthorityID(der), Name: authorityName(region),
		Cert: der, Region: region.ID, Divisions: region.Divisions}}
	if err := a.Record.Validate(); err != nil {
		return nil, fmt.Errorf("identity authority of %s: %w", region.ID, err)
	}
	return a, nil
}

// Certify issues a certificate for a fresh signing key of the enterprise
// u, valid from an hour before now.
func (a *Authority) Certify(u credit.USCC, now time.Time) (Enterprise, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Enterprise{}, err
	}
	der, err := credit.IssueEnterpriseCert(a.Record.Cert, a.Key, u, "Enterprise "+string(u), key.Public(), now.Add(-time.Hour), now.Add(enterpriseValidity))
	if err != nil {
		return Enterprise{}, err
	}
	return Enterprise{USCC: u, Key: key, Chain: [][]byte{der}}, nil
}

// regionAuthority loads the region's authority from dir (authority.key and
// authority.pem, the files 'ccnode authority create' writes), creating
// both; with no dir it makes a fresh one. A kept folder keeps its
// authority, so a restart registers the same one again.
func regionAuthority(dir string, region credit.Region, now time.Time) (*Authority, error) {
	if dir == "" {
		return NewAuthority(region, now)
	}
	certPath := filepath.Join(dir, "authority.pem")
	key, err := loadOrCreateKey(filepath.Join(dir, "authority.key"))
	if err != nil {
		return nil, fmt.Errorf("identity authority key: %w", err)
	}
	b, err := os.ReadFile(certPath)
	if errors.Is(err, os.ErrNotExist) {
		der, err := credit.NewAuthorityCert(authorityName(region), key, now.Add(-time.Hour), now.Add(authorityValidity))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return nil, fmt.Errorf("identity authority certificate: %w", err)
		}
		return authorityOf(region, key, der)
	}
	if err != nil {
		return nil, fmt.Errorf("identity authority certificate: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("identity authority certificate %s: not a PEM CERTIFICATE", certPath)
	}
	return authorityOf(region, key, blk.Bytes)
}
