package main

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
)

var nodeFlag = &cli.StringFlag{Name: "node", Category: catNetwork, Value: "http://" + node.DefaultHTTPAddr, EnvVars: []string{"CCNODE_NODE"},
	Usage: "the node's bank API URL"}

// operatorTokenEnv holds an operator's token itself, for callers that
// keep it out of files; a flag would show it in the process list.
const operatorTokenEnv = "CCNODE_OPERATOR_TOKEN"

var adminFlags = []cli.Flag{
	&cli.StringFlag{Name: "admin", Category: catNetwork, Value: "http://" + node.DefaultAdminAddr, EnvVars: []string{"CCNODE_ADMIN"},
		Usage: "the node's admin API URL (admin.addr; loopback by default)"},
	&cli.StringFlag{Name: "operator-token-file", Category: catNetwork, EnvVars: []string{"CCNODE_OPERATOR_TOKEN_FILE"},
		Usage: "file holding your operator token (from 'ccnode init' or 'ccnode operator add'); without it the token is read from $" + operatorTokenEnv},
}

// adminClient is a client of the admin API with the operator's token.
func adminClient(c *cli.Context) (*node.Client, error) {
	tok, err := operatorToken(c)
	if err != nil {
		return nil, err
	}
	if tok == "" {
		return nil, fmt.Errorf("no operator token: give --operator-token-file or set $%s", operatorTokenEnv)
	}
	return &node.Client{Admin: c.String("admin"), OperatorToken: tok}, nil
}

// operatorToken is the token of --operator-token-file, else of
// $CCNODE_OPERATOR_TOKEN, else of the first of defaults that exists; ""
// when there is none.
func operatorToken(c *cli.Context, defaults ...string) (string, error) {
	tok := strings.TrimSpace(os.Getenv(operatorTokenEnv))
	p := c.String("operator-token-file")
	if p == "" && tok == "" {
		for _, d := range defaults {
			if fileExists(d) {
				p = d
				break
			}
		}
	}
	if p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("--operator-token-file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	return tok, nil
}

func printJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func consentCommand() *cli.Command {
	return &cli.Command{
		Name:  "consent",
		Usage: "record, revoke and inspect consents at a node",
		Subcommands: []*cli.Command{
			{
				Name:  "grant",
				Usage: "sign a consent as the enterprise and have the region's node record it (admin)",
				Description: "Builds the consent document, signs it with the enterprise's key under its certificate\n" +
					"(from a registered identity authority, naming the enterprise's USCC; 'ccnode authority\n" +
					"issue' makes one for trials), and posts it to the node's admin API, which checks the certificate,\n" +
					"countersigns it and records its commitment on the ledger. The countersigned document,\n" +
					"which the bank presents with its queries, goes to --out.",
				Flags: append(append([]cli.Flag{}, adminFlags...),
					&cli.StringFlag{Name: "enterprise-key", Required: true, Category: catData, EnvVars: []string{"CCNODE_ENTERPRISE_KEY"},
						Usage: "the enterprise's private key, PKCS#8 PEM (" + enterpriseKeyFile + " of 'ccnode authority issue')"},
					&cli.StringFlag{Name: "enterprise-cert", Required: true, Category: catData, EnvVars: []string{"CCNODE_ENTERPRISE_CERT"},
						Usage: "the enterprise's certificate chain, PEM, leaf first (" + enterpriseCert + ")"},
					&cli.StringFlag{Name: "uscc", Required: true, Category: catData, Usage: "the enterprise's USCC"},
					&cli.StringFlag{Name: "bank", Required: true, Category: catData, Usage: "grantee bank id"},
					&cli.StringFlag{Name: "region", Required: true, Category: catData, EnvVars: []string{"CCNODE_REGION"}, Usage: "issuing region (the node's)"},
					&cli.StringFlag{Name: "categories", Required: true, Category: catData, Usage: "comma-separated categories"},
					&cli.StringFlag{Name: "purpose", Value: string(credit.PurposeLoanApplication), Category: catData, Usage: "purpose"},
					&cli.DurationFlag{Name: "valid-for", Value: 90 * 24 * time.Hour, Category: catData, Usage: "validity from now"},
					&cli.StringFlag{Name: "id", Category: catData, Usage: "consent id (default: random)"},
					&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Category: catOutput, Usage: "write the countersigned document here"},
				),
				Action: runConsentGrant,
			},
			{
				Name:  "revoke",
				Usage: "revoke a consent on the ledger (admin)",
				Flags: append(append([]cli.Flag{}, adminFlags...),
					&cli.StringFlag{Name: "id", Required: true, Usage: "consent id"}),
				Action: func(c *cli.Context) error {
					cl, err := adminClient(c)
					if err != nil {
						return err
					}
					res, err := cl.RevokeConsent(c.Context, c.String("id"))
					if err != nil {
						return err
					}
					return printJSON(c, res)
				},
			},
			{
				Name:  "status",
				Usage: "a consent's commitment and its status now",
				Flags: append([]cli.Flag{nodeFlag, &cli.StringFlag{Name: "id", Required: true, Usage: "consent id"}}, tlsFlags...),
				Action: func(c *cli.Context) error {
					cl, err := nodeClient(c)
					if err != nil {
						return err
					}
					res, err := cl.ConsentStatus(c.Context, c.String("id"))
					if err != nil {
						return err
					}
					return printJSON(c, res)
				},
			},
		},
	}
}

func runConsentGrant(c *cli.Context) error {
	u, err := credit.ParseUSCC(c.String("uscc"))
	if err != nil {
		return fmt.Errorf("consent grant: --uscc: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	key, chain, err := enterpriseSigner(c.String("enterprise-key"), c.String("enterprise-cert"), u, now)
	if err != nil {
		return fmt.Errorf("consent grant: %w", err)
	}
	cats, err := credit.ParseCategories(c.String("categories"))
	if err != nil {
		return err
	}
	id := c.String("id")
	if id == "" {
		b := make([]byte, 8)
		if _, err := randRead(b); err != nil {
			return err
		}
		id = fmt.Sprintf("consent-%x", b)
	}
	g := credit.ConsentGrant{
		Version: credit.ConsentVersion, ID: id, Subject: u, Grantee: credit.BankID(c.String("bank")), Categories: cats,
		Purpose: credit.Purpose(c.String("purpose")), ValidFrom: now, ValidUntil: now.Add(c.Duration("valid-for")),
		Region: credit.RegionID(c.String("region")),
	}
	if err := g.SignEnterprise(key, chain, now); err != nil {
		return err
	}
	cl, err := adminClient(c)
	if err != nil {
		return err
	}
	res, err := cl.RecordConsent(c.Context, g)
	if err != nil {
		return fmt.Errorf("consent grant: %w", err)
	}
	b, err := json.MarshalIndent(res.Consent, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.String("out"), append(b, '\n'), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "consent %s recorded (%s); document in %s\n", g.ID, res.Status, c.String("out"))
	return nil
}

// enterpriseSigner loads the enterprise's key and certificate chain and
// checks what the node would refuse, so that a mistake is told before
// anything is sent: the key is the certificate's, the certificate names
// the consent's USCC and is valid now (the signing time).
func enterpriseSigner(keyPath, certPath string, u credit.USCC, now time.Time) (crypto.Signer, [][]byte, error) {
	key, err := loadSigningKey(keyPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w (create an enterprise key and certificate with 'ccnode authority issue')", err)
	}
	if err != nil {
		return nil, nil, err
	}
	chain, certs, err := readCertChain(certPath)
	if err != nil {
		return nil, nil, err
	}
	leaf := certs[0]
	if leaf.IsCA {
		return nil, nil, fmt.Errorf("certificate %s is a CA certificate, not an enterprise's", certPath)
	}
	if err := keyMatches(key, leaf); err != nil {
		return nil, nil, fmt.Errorf("key %s does not match certificate %s: %w", keyPath, certPath, err)
	}
	if got := leaf.Subject.SerialNumber; got != string(u) {
		return nil, nil, fmt.Errorf("certificate %s is for USCC %s, not %s", certPath, credit.Quote(got), u)
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, nil, fmt.Errorf("certificate %s is valid from %s to %s, not now (%s)", certPath,
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339), now.Format(time.RFC3339))
	}
	return key, chain, nil
}
