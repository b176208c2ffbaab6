package main

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// The output flags every command takes, before or after its name
// (`ccnode --quiet import …` and `ccnode import --quiet …` are the same).
const (
	flagLogFormat = "log-format"
	flagLogLevel  = "log-level"
	flagQuiet     = "quiet"
)

// outputFlags returns fresh flag values: cli keeps parse state in each
// flag, so the app and every command need their own.
func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagLogFormat, Category: catOutput, Value: "text", EnvVars: []string{"CCNODE_LOG_FORMAT"},
			Usage: "log lines on standard error as text (key=value) or json"},
		&cli.StringFlag{Name: flagLogLevel, Category: catOutput, EnvVars: []string{"CCNODE_LOG_LEVEL"},
			Usage: "debug, info, warn or error (default: info; warn for audit and demo)"},
		&cli.BoolFlag{Name: flagQuiet, Aliases: []string{"q"}, Category: catOutput, EnvVars: []string{"CCNODE_QUIET"},
			Usage: "print only errors on standard error: no progress, summaries or log lines below error"},
	}
}

// withOutputFlags gives every command and subcommand the output flags,
// and checks them before its action runs.
func withOutputFlags(cmds []*cli.Command) []*cli.Command {
	for _, c := range cmds {
		// A new slice: commands build their flags from shared lists.
		c.Flags = slices.Concat(c.Flags, outputFlags())
		if act := c.Action; act != nil {
			c.Action = func(cc *cli.Context) error {
				log, err := newLogger(cc, slog.LevelInfo)
				if err != nil {
					return err
				}
				// Libraries given no logger log through the default: the
				// same format and level as the command's own lines.
				slog.SetDefault(log)
				return act(cc)
			}
		}
		withOutputFlags(c.Subcommands)
	}
	return cmds
}

// outputFlag is the value of an output flag from the innermost command
// that was given it, else the command's own (its default or environment).
func outputFlag(c *cli.Context, name string) string {
	for _, cc := range c.Lineage() {
		if slices.Contains(cc.LocalFlagNames(), name) {
			return cc.String(name)
		}
	}
	return c.String(name)
}

// quiet reports whether --quiet was given anywhere on the command line.
func quiet(c *cli.Context) bool {
	for _, cc := range c.Lineage() {
		if cc.Bool(flagQuiet) {
			return true
		}
	}
	return false
}

// newLogger is the one logger setup of every command: --log-format,
// --log-level (else def) and --quiet, writing to the app's error writer.
func newLogger(c *cli.Context, def slog.Level) (*slog.Logger, error) {
	lvl := def
	if s := outputFlag(c, flagLogLevel); s != "" {
		if err := lvl.UnmarshalText([]byte(s)); err != nil {
			return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
		}
	}
	if quiet(c) {
		lvl = max(lvl, slog.LevelError)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch f := outputFlag(c, flagLogFormat); f {
	case "text", "":
		return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", f)
	}
}

// versionString is the module version and VCS revision the binary was
// built from, as the Go toolchain recorded them (no revision when built
// with -buildvcs=false or outside a checkout).
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (built without module information)"
	}
	return formatVersion(bi)
}

func formatVersion(bi *debug.BuildInfo) string {
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	var b strings.Builder
	b.WriteString(bi.Main.Version)
	if rev := settings["vcs.revision"]; rev != "" {
		fmt.Fprintf(&b, " (revision %s", rev)
		if t := settings["vcs.time"]; t != "" {
			fmt.Fprintf(&b, ", %s", t)
		}
		if settings["vcs.modified"] == "true" {
			b.WriteString(", modified")
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, " %s", bi.GoVersion)
	return b.String()
}
