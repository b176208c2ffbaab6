package main

import (
	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/node"
)

// runFlags are the node settings a flag may override over the config file.
var runFlags = []cli.Flag{
	&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Required: true, Category: catData, EnvVars: []string{"CCNODE_CONFIG"},
		Usage: "node config file (YAML; see 'ccnode init')"},
	&cli.StringFlag{Name: "http-addr", Category: catNetwork, EnvVars: []string{"CCNODE_HTTP_ADDR"},
		Usage: "override http.addr"},
	&cli.StringFlag{Name: "admin-addr", Category: catNetwork, EnvVars: []string{"CCNODE_ADMIN_ADDR"},
		Usage: "override admin.addr"},
	&cli.StringFlag{Name: "data-dir", Category: catData, EnvVars: []string{"CCNODE_DATA_DIR"},
		Usage: "override data_dir"},
	&cli.DurationFlag{Name: "anchor-interval", Category: catLedger, EnvVars: []string{"CCNODE_ANCHOR_INTERVAL"},
		Usage: "override anchor.interval"},
	&cli.StringFlag{Name: "anchor-mode", Category: catLedger, EnvVars: []string{"CCNODE_ANCHOR_MODE"},
		Usage: "override anchor.mode: checkpoint, per_receipt or off"},
	&cli.DurationFlag{Name: "grace-period", Category: catLedger, EnvVars: []string{"CCNODE_GRACE_PERIOD"},
		Usage: "override ledger.grace_period"},
}

// loadConfig reads the config file and applies the flags over it.
func loadConfig(c *cli.Context) (node.Config, error) {
	cfg, err := node.LoadConfig(c.String("config"))
	if err != nil {
		return cfg, err
	}
	if c.IsSet("http-addr") {
		cfg.HTTP.Addr = c.String("http-addr")
	}
	if c.IsSet("admin-addr") {
		cfg.Admin.Addr = c.String("admin-addr")
	}
	if c.IsSet("data-dir") {
		cfg.DataDir = c.String("data-dir")
	}
	if c.IsSet("anchor-interval") {
		cfg.Anchor.Interval = c.Duration("anchor-interval")
	}
	if c.IsSet("anchor-mode") {
		cfg.Anchor.Mode = c.String("anchor-mode")
	}
	if c.IsSet("grace-period") {
		cfg.Ledger.GracePeriod = c.Duration("grace-period")
	}
	return cfg, cfg.Validate()
}

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "inspect node configuration",
		Subcommands: []*cli.Command{{
			Name:  "show",
			Usage: "print the effective configuration (defaults, then the file, then flags)",
			Flags: runFlags,
			Action: func(c *cli.Context) error {
				cfg, err := loadConfig(c)
				if err != nil {
					return err
				}
				b, err := cfg.YAML()
				if err != nil {
					return err
				}
				_, err = c.App.Writer.Write(b)
				return err
			},
		}},
	}
}
