package main

import (
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

var adminFlags = append([]cli.Flag{
	nodeFlag,
	&cli.StringFlag{Name: "admin-token-file", Category: catNetwork, EnvVars: []string{"CCNODE_ADMIN_TOKEN_FILE"},
		Usage: "file holding the node's admin token"},
}, tlsFlags...)

func adminClient(c *cli.Context) (*node.Client, error) {
	cl, err := nodeClient(c)
	if err != nil {
		return nil, err
	}
	if p := c.String("admin-token-file"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		cl.AdminToken = strings.TrimSpace(string(b))
	}
	return cl, nil
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
				Description: "Builds the consent document, signs it with the enterprise's key, and posts it to\n" +
					"the node, which countersigns it and records its commitment on the ledger. The\n" +
					"countersigned document, which the bank presents with its queries, goes to --out.",
				Flags: append(append([]cli.Flag{}, adminFlags...),
					&cli.StringFlag{Name: "enterprise-key", Required: true, Category: catData, EnvVars: []string{"CCNODE_ENTERPRISE_KEY"},
						Usage: "enterprise's ed25519 key file (created if missing)"},
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
	key, err := node.LoadKeyFile(c.String("enterprise-key"))
	if errors.Is(err, os.ErrNotExist) {
		key, err = node.GenerateKeyFile(c.String("enterprise-key"))
	}
	if err != nil {
		return err
	}
	u, err := credit.ParseUSCC(c.String("uscc"))
	if err != nil {
		return err
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
	now := time.Now().UTC().Truncate(time.Second)
	g := credit.ConsentGrant{
		Version: 1, ID: id, Subject: u, Grantee: credit.BankID(c.String("bank")), Categories: cats,
		Purpose: credit.Purpose(c.String("purpose")), ValidFrom: now, ValidUntil: now.Add(c.Duration("valid-for")),
		Region: credit.RegionID(c.String("region")),
	}
	if err := g.SignEnterprise(key); err != nil {
		return err
	}
	cl, err := adminClient(c)
	if err != nil {
		return err
	}
	res, err := cl.RecordConsent(c.Context, g)
	if err != nil {
		return err
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
