package main

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/atomicfile"
	"github.com/prdcredit/ccnode/node"
)

// Files of a development authority (authority create) and of an
// enterprise it certified (authority issue).
const (
	authorityKeyFile  = "authority.key"
	authorityCertFile = "authority.pem"
	enterpriseKeyFile = "enterprise.key"
	enterpriseCert    = "enterprise.pem"
)

func authorityCommand() *cli.Command {
	certFlags := []cli.Flag{
		&cli.StringFlag{Name: "authority", Category: catData, Usage: "folder written by 'ccnode authority create' (its " + authorityCertFile + ")"},
		&cli.StringFlag{Name: "cert", Category: catData, Usage: "the authority's CA certificate, PEM (instead of --authority)"},
	}
	return &cli.Command{
		Name:  "authority",
		Usage: "enterprise identity authorities: create a development one, issue enterprise certificates, register, retire, revoke",
		Description: "An enterprise identity authority certifies enterprises' signing keys: its certificate\n" +
			"names the enterprise's USCC. A region registers the authorities of its divisions on the\n" +
			"ledger; a consent counts only when the enterprise signed it with a key such an authority\n" +
			"certified. 'create' and 'issue' make a development authority and its certificates for\n" +
			"trials and tests; a real authority's certificate is registered the same way.",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "create a development authority: an ed25519 key and a self-signed CA certificate",
				Description: "Writes DIR/" + authorityKeyFile + " (PKCS#8 PEM, mode 0600) and DIR/" + authorityCertFile +
					" (the CA certificate, PEM).\nRefuses to overwrite them.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Required: true, Category: catData, Usage: "the authority's name (certificate subject)"},
					&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Category: catOutput, Usage: "folder to write the key and certificate to"},
					&cli.DurationFlag{Name: "valid-for", Value: 10 * 365 * 24 * time.Hour, Category: catData, Usage: "certificate validity from now"},
				},
				Action: runAuthorityCreate,
			},
			{
				Name:  "issue",
				Usage: "certify a new enterprise key for a USCC under a development authority",
				Description: "Writes OUT/" + enterpriseKeyFile + " (the enterprise's ed25519 key, PKCS#8 PEM, mode 0600) and\n" +
					"OUT/" + enterpriseCert + " (its certificate chain, PEM, leaf first), which 'ccnode consent grant'\n" +
					"signs with. Refuses to overwrite them.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "authority", Required: true, Category: catData, Usage: "folder written by 'ccnode authority create'"},
					&cli.StringFlag{Name: "uscc", Required: true, Category: catData, Usage: "the enterprise's USCC, named by the certificate"},
					&cli.StringFlag{Name: "name", Required: true, Category: catData, Usage: "the enterprise's name (certificate subject)"},
					&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Category: catOutput, Usage: "folder to write the key and certificate to"},
					&cli.DurationFlag{Name: "valid-for", Value: 2 * 365 * 24 * time.Hour, Category: catData, Usage: "certificate validity from now"},
				},
				Action: runAuthorityIssue,
			},
			{
				Name:  "register",
				Usage: "register an authority for this region's divisions on the ledger (admin)",
				Flags: append(append(append([]cli.Flag{}, adminFlags...), certFlags...),
					&cli.StringFlag{Name: "divisions", Category: catData, Usage: "comma-separated division-code prefixes it certifies (default: the region's own)"},
					&cli.StringFlag{Name: "name", Category: catData, Usage: "name on the ledger (default: the certificate's)"},
				),
				Action: runAuthorityRegister,
			},
			{
				Name:  "retire",
				Usage: "retire a registered authority: consents its certificates signed stop counting (admin)",
				Flags: append(append(append([]cli.Flag{}, adminFlags...), certFlags...),
					&cli.StringFlag{Name: "id", Category: catData, Usage: "the authority's id (instead of --authority or --cert)"},
				),
				Action: runAuthorityRetire,
			},
			{
				Name:  "revoke",
				Usage: "revoke an enterprise certificate: consents it signs from now on are refused (admin)",
				Description: "The node finds the registered authority the certificate chains to and records the\n" +
					"certificate's revocation id (a hash of its issuer and serial number) on the ledger;\n" +
					"the ledger never learns the USCC.",
				Flags: append(append([]cli.Flag{}, adminFlags...),
					&cli.StringFlag{Name: "cert", Required: true, Category: catData, Usage: "the enterprise certificate, PEM (" + enterpriseCert + ")"},
				),
				Action: runAuthorityRevoke,
			},
		},
	}
}

func runAuthorityCreate(c *cli.Context) error {
	name := strings.TrimSpace(c.String("name"))
	if name == "" {
		return errors.New("authority create: --name is empty")
	}
	if c.Duration("valid-for") <= 0 {
		return errors.New("authority create: --valid-for must be positive")
	}
	dir := c.String("out")
	certPath, keyPath := filepath.Join(dir, authorityCertFile), filepath.Join(dir, authorityKeyFile)
	if _, err := os.Stat(certPath); err == nil {
		return fmt.Errorf("authority create: %s exists; not overwriting it", certPath)
	}
	key, err := node.GenerateKeyFile(keyPath)
	if err != nil {
		return fmt.Errorf("authority create: %w", err)
	}
	// An hour back: a certificate made now is valid on a clock a little behind.
	now := time.Now().UTC().Truncate(time.Second)
	der, err := credit.NewAuthorityCert(name, key, now.Add(-time.Hour), now.Add(c.Duration("valid-for")))
	if err != nil {
		return err
	}
	if err := atomicfile.WriteNew(certPath, pemCert(der), 0o600); err != nil {
		return fmt.Errorf("authority create: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "authority %s created\n  id:          %s\n  key:         %s\n  certificate: %s\n"+
		"Register it on the ledger with: ccnode authority register --authority %s\n", credit.Quote(name), credit.AuthorityID(der), keyPath, certPath, dir)
	return nil
}

func runAuthorityIssue(c *cli.Context) error {
	u, err := credit.ParseUSCC(c.String("uscc"))
	if err != nil {
		return fmt.Errorf("authority issue: --uscc: %w", err)
	}
	name := strings.TrimSpace(c.String("name"))
	if name == "" {
		return errors.New("authority issue: --name is empty")
	}
	if c.Duration("valid-for") <= 0 {
		return errors.New("authority issue: --valid-for must be positive")
	}
	dir := c.String("authority")
	caKey, err := loadSigningKey(filepath.Join(dir, authorityKeyFile))
	if err != nil {
		return fmt.Errorf("authority issue: %w", err)
	}
	chain, certs, err := readCertChain(filepath.Join(dir, authorityCertFile))
	if err != nil {
		return fmt.Errorf("authority issue: %w", err)
	}
	ca := certs[0]
	if !ca.IsCA {
		return fmt.Errorf("authority issue: %s is not a CA certificate", filepath.Join(dir, authorityCertFile))
	}
	if err := keyMatches(caKey, ca); err != nil {
		return fmt.Errorf("authority issue: key %s does not match certificate %s: %w",
			filepath.Join(dir, authorityKeyFile), filepath.Join(dir, authorityCertFile), err)
	}
	out := c.String("out")
	certPath, keyPath := filepath.Join(out, enterpriseCert), filepath.Join(out, enterpriseKeyFile)
	if _, err := os.Stat(certPath); err == nil {
		return fmt.Errorf("authority issue: %s exists; not overwriting it", certPath)
	}
	now := time.Now().UTC().Truncate(time.Second)
	notAfter := now.Add(c.Duration("valid-for"))
	if notAfter.After(ca.NotAfter) {
		return fmt.Errorf("authority issue: --valid-for %s ends after the authority's certificate (valid until %s)",
			c.Duration("valid-for"), ca.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := node.GenerateKeyFile(keyPath)
	if err != nil {
		return fmt.Errorf("authority issue: %w", err)
	}
	der, err := credit.IssueEnterpriseCert(chain[0], caKey, u, name, key.Public(), now.Add(-time.Hour), notAfter)
	if err != nil {
		return err
	}
	// An authority whose certificate file holds a chain (an intermediate
	// under a registered root) passes it on: the consent carries it.
	pemChain := pemCert(der)
	if len(chain) > 1 {
		for _, c := range chain {
			pemChain = append(pemChain, pemCert(c)...)
		}
	}
	if err := atomicfile.WriteNew(certPath, pemChain, 0o600); err != nil {
		return fmt.Errorf("authority issue: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "enterprise %s (%s) certified by %s\n  key:         %s\n  certificate: %s\n"+
		"Sign consents with: ccnode consent grant --enterprise-key %s --enterprise-cert %s --uscc %s ...\n",
		credit.Quote(name), u, credit.Quote(ca.Subject.CommonName), keyPath, certPath, keyPath, certPath, u)
	return nil
}

// authorityCert reads the CA certificate --authority DIR or --cert FILE names.
func authorityCert(c *cli.Context) ([]byte, error) {
	path := c.String("cert")
	switch {
	case path != "" && c.String("authority") != "":
		return nil, errors.New("name the authority by --authority DIR or --cert FILE, not both")
	case path == "" && c.String("authority") == "":
		return nil, errors.New("name the authority: --authority DIR (from 'ccnode authority create') or --cert FILE")
	case path == "":
		path = filepath.Join(c.String("authority"), authorityCertFile)
	}
	chain, certs, err := readCertChain(path)
	if err != nil {
		return nil, err
	}
	if !certs[0].IsCA || !certs[0].BasicConstraintsValid {
		return nil, fmt.Errorf("%s is not a CA certificate (subject %s): an enterprise certificate cannot be registered as an authority",
			path, credit.Quote(certs[0].Subject.String()))
	}
	return chain[0], nil
}

func runAuthorityRegister(c *cli.Context) error {
	der, err := authorityCert(c)
	if err != nil {
		return fmt.Errorf("authority register: %w", err)
	}
	req := node.AuthorityRequest{Cert: der, Name: c.String("name")}
	for _, d := range strings.Split(c.String("divisions"), ",") {
		if d = strings.TrimSpace(d); d != "" {
			req.Divisions = append(req.Divisions, d)
		}
	}
	cl, err := adminClient(c)
	if err != nil {
		return err
	}
	a, err := cl.RegisterAuthority(c.Context, req)
	if err != nil {
		return fmt.Errorf("authority register: %w", err)
	}
	return printJSON(c, a)
}

func runAuthorityRetire(c *cli.Context) error {
	id := c.String("id")
	if id == "" {
		der, err := authorityCert(c)
		if err != nil {
			return fmt.Errorf("authority retire: %w (or --id)", err)
		}
		id = credit.AuthorityID(der)
	}
	cl, err := adminClient(c)
	if err != nil {
		return err
	}
	a, err := cl.RetireAuthority(c.Context, id)
	if err != nil {
		return fmt.Errorf("authority retire: %w", err)
	}
	return printJSON(c, a)
}

func runAuthorityRevoke(c *cli.Context) error {
	chain, certs, err := readCertChain(c.String("cert"))
	if err != nil {
		return fmt.Errorf("authority revoke: %w", err)
	}
	if certs[0].IsCA {
		return fmt.Errorf("authority revoke: %s is a CA certificate; retire an authority with 'ccnode authority retire'", c.String("cert"))
	}
	cl, err := adminClient(c)
	if err != nil {
		return err
	}
	r, err := cl.RevokeCertificate(c.Context, node.RevocationRequest{Cert: chain})
	if err != nil {
		return fmt.Errorf("authority revoke: %w", err)
	}
	return printJSON(c, r)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// readCertChain reads every CERTIFICATE block of a PEM file, in order,
// and says plainly what else it found.
func readCertChain(path string) ([][]byte, []*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate: %w", err)
	}
	var ders [][]byte
	var certs []*x509.Certificate
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			if strings.Contains(blk.Type, "PRIVATE KEY") {
				return nil, nil, fmt.Errorf("certificate %s holds a private key, not a certificate", path)
			}
			return nil, nil, fmt.Errorf("certificate %s: a PEM block of type %s, want CERTIFICATE", path, credit.Quote(blk.Type))
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("certificate %s: block %d: %w", path, len(ders)+1, err)
		}
		ders, certs = append(ders, blk.Bytes), append(certs, c)
	}
	if len(ders) == 0 {
		return nil, nil, fmt.Errorf("certificate %s: no PEM CERTIFICATE block", path)
	}
	if len(ders) > credit.MaxCertChain {
		return nil, nil, fmt.Errorf("certificate %s: a chain of %d certificates, at most %d", path, len(ders), credit.MaxCertChain)
	}
	return ders, certs, nil
}

// loadSigningKey reads a PKCS#8 PEM private key, saying so when the file
// holds a certificate instead.
func loadSigningKey(path string) (crypto.Signer, error) {
	if b, err := os.ReadFile(path); err == nil {
		if blk, _ := pem.Decode(b); blk != nil && blk.Type == "CERTIFICATE" {
			return nil, fmt.Errorf("key %s holds a certificate, not a private key", path)
		}
	}
	k, err := node.LoadKeyFile(path)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// keyMatches checks that key is the private key of cert's public key.
func keyMatches(key crypto.Signer, cert *x509.Certificate) error {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("the certificate (subject %s) certifies another key", credit.Quote(cert.Subject.String()))
	}
	return nil
}
