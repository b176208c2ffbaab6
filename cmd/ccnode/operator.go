package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/internal/atomicfile"
	"github.com/prdcredit/ccnode/node"
)

func operatorCommand() *cli.Command {
	configFlag := &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Required: true, Category: catData, EnvVars: []string{"CCNODE_CONFIG"},
		Usage: "node config file (its admin.operators_file is edited)"}
	return &cli.Command{
		Name:  "operator",
		Usage: "add and revoke the named operators of a node's admin API",
		Description: "Each operator has a name and a token of its own; the node keeps only the\n" +
			"token's SHA-256 in admin.operators_file and logs every admin call with the\n" +
			"operator's name. The running node reads the file on every admin call, so\n" +
			"a revocation holds from the next call, without a restart.",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "add an operator and print its token (once: it is stored nowhere)",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{configFlag,
					&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Category: catOutput,
						Usage: "write the token to this new file (mode 0600) instead of printing it"}},
				Action: func(c *cli.Context) error {
					name, path, err := operatorArgs(c)
					if err != nil {
						return err
					}
					tok, err := node.AddOperator(path, name)
					if err != nil {
						return err
					}
					if out := c.String("out"); out != "" {
						if err := atomicfile.WriteNew(out, []byte(tok+"\n"), 0o600); err != nil {
							return fmt.Errorf("operator %s was added to %s but its token could not be written (revoke it): %w", name, path, err)
						}
						fmt.Fprintf(c.App.ErrWriter, "operator %s added to %s; token in %s\n", name, path, out)
						return nil
					}
					fmt.Fprintln(c.App.Writer, tok)
					fmt.Fprintf(c.App.ErrWriter, "operator %s added to %s; the token above is shown once: hand it to the operator\n", name, path)
					return nil
				},
			},
			{
				Name:      "revoke",
				Usage:     "revoke an operator's token (the running node refuses it from the next call)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{configFlag},
				Action: func(c *cli.Context) error {
					name, path, err := operatorArgs(c)
					if err != nil {
						return err
					}
					if err := node.RevokeOperator(path, name); err != nil {
						return err
					}
					fmt.Fprintf(c.App.ErrWriter, "operator %s revoked in %s\n", name, path)
					return nil
				},
			},
		},
	}
}

// operatorArgs is the operator's name (the one argument) and the config's
// operators file.
func operatorArgs(c *cli.Context) (name, path string, err error) {
	if c.NArg() != 1 {
		return "", "", fmt.Errorf("want one argument, the operator's name; got %d", c.NArg())
	}
	name = c.Args().First()
	if err := node.ValidateOperatorName(name); err != nil {
		return "", "", err
	}
	cfg, err := node.LoadConfig(c.String("config"))
	if err != nil {
		return "", "", err
	}
	if err := cfg.Validate(); err != nil {
		return "", "", err
	}
	return name, cfg.Admin.OperatorsFile, nil
}
