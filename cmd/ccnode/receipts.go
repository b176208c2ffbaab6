package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/urfave/cli/v2"
	"golang.org/x/mod/sumdb/note"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/store"
	"github.com/prdcredit/ccnode/store/receipts"
)

func receiptsCommand() *cli.Command {
	return &cli.Command{
		Name:  "receipts",
		Usage: "work with a node's receipt log",
		Subcommands: []*cli.Command{{
			Name:  "export",
			Usage: "export receipts as JSON Lines for auditors (ccnode-receipts/1)",
			Description: "Kind answered: this region's receipt log in leaf order from --from, leaf bytes\n" +
				"verbatim, with the acknowledgements stored beside each. Kind received: the\n" +
				"receipts this region received as requester, with its own acks. A stopped node's\n" +
				"store is read directly; a running node (it holds the store) streams the same\n" +
				"export from its admin API (--admin, default the config's admin.addr, with the\n" +
				"operator's token).",
			Flags: append([]cli.Flag{
				&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Required: true, Category: catData, EnvVars: []string{"CCNODE_CONFIG"},
					Usage: "node config file"},
				&cli.StringFlag{Name: "kind", Value: string(credit.ExportAnswered), Category: catData, Usage: "answered or received"},
				&cli.Uint64Flag{Name: "from", Category: catData, Usage: "first leaf index (answered)"},
				&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Category: catOutput, Usage: "output file (default stdout)"},
			}, nodeAdminFlags()...),
			Action: runReceiptsExport,
		}, {
			Name:  "get",
			Usage: "read one receipt with its inclusion proof from a running node",
			Description: "As a bank (--bank and --key): a read signed with the bank's key, naming the\n" +
				"receipt, sent to the bank API (--node); a bank reads only receipts of its own\n" +
				"queries. As an operator (without --bank): any receipt of the node's log, from\n" +
				"the admin API (--admin) with the operator's token.",
			Flags: append([]cli.Flag{
				nodeFlag,
				&cli.StringFlag{Name: "bank", Category: catData, EnvVars: []string{"CCNODE_BANK"}, Usage: "read as this bank"},
				&cli.StringFlag{Name: "key", Category: catData, EnvVars: []string{"CCNODE_BANK_KEY"}, Usage: "the bank's ed25519 key file"},
				&cli.StringFlag{Name: "id", Required: true, Category: catData, Usage: "receipt id"},
			}, append(append([]cli.Flag{}, tlsFlags...), adminFlags...)...),
			Action: runReceiptsGet,
		}, {
			Name:  "consistency",
			Usage: "read and check a consistency proof between two anchored checkpoints from a running node",
			Description: "Asks the bank API (--node; public, like GET /v1/checkpoint) for an RFC 6962\n" +
				"consistency proof from the region's anchored checkpoint of size --from to the one\n" +
				"of size --to, checks the proof connects the two roots, and prints it as JSON.\n" +
				"With --verifier-key (the note verifier key of the region's log, see the README)\n" +
				"it also checks both checkpoints' signed notes as a standard verifier does.",
			Flags: append([]cli.Flag{
				nodeFlag,
				&cli.Uint64Flag{Name: "from", Required: true, Category: catData, Usage: "the older anchored size"},
				&cli.Uint64Flag{Name: "to", Required: true, Category: catData, Usage: "the newer anchored size"},
				&cli.StringFlag{Name: "verifier-key", Category: catData, EnvVars: []string{"CCNODE_VERIFIER_KEY"},
					Usage: "note verifier key <origin>+<hash>+<key> of the region's log"},
			}, tlsFlags...),
			Action: runReceiptsConsistency,
		}},
	}
}

func runReceiptsConsistency(c *cli.Context) error {
	cl, err := nodeClient(c)
	if err != nil {
		return err
	}
	cp, err := cl.Consistency(c.Context, c.Uint64("from"), c.Uint64("to"))
	if err != nil {
		return err
	}
	if err := checkConsistency(cp, c.String("verifier-key")); err != nil {
		return err
	}
	return printJSON(c, cp)
}

// checkConsistency checks what the node sent with the libraries a third
// party would use: the notes with x/mod's note and formats' checkpoint
// parser, the proof with transparency-dev/merkle.
func checkConsistency(cp *node.ConsistencyProof, vkey string) error {
	if cp.To.Size < cp.From.Size {
		return fmt.Errorf("node sent checkpoints of sizes %d and %d", cp.From.Size, cp.To.Size)
	}
	if cp.From.Origin() != cp.To.Origin() {
		return fmt.Errorf("checkpoints name two logs: %q and %q", cp.From.Origin(), cp.To.Origin())
	}
	if vkey != "" {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return fmt.Errorf("--verifier-key: %w", err)
		}
		for _, ac := range []credit.AnchoredCheckpoint{cp.From, cp.To} {
			lc, _, _, err := log.ParseCheckpoint([]byte(ac.Note), v.Name(), v)
			if err != nil {
				return fmt.Errorf("checkpoint of size %d: %w", ac.Size, err)
			}
			if lc.Size != ac.Size || !bytes.Equal(lc.Hash, ac.Root) {
				return fmt.Errorf("checkpoint of size %d: its note says size %d, root %x", ac.Size, lc.Size, lc.Hash)
			}
		}
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.From.Size, cp.To.Size, cp.Proof, cp.From.Root, cp.To.Root); err != nil {
		return fmt.Errorf("consistency proof from size %d to %d: %w", cp.From.Size, cp.To.Size, err)
	}
	return nil
}

func runReceiptsGet(c *cli.Context) error {
	var rp *node.ReceiptProof
	if bank := c.String("bank"); bank != "" {
		if c.String("key") == "" {
			return fmt.Errorf("--bank needs --key, the bank's key file")
		}
		key, err := node.LoadKeyFile(c.String("key"))
		if err != nil {
			return err
		}
		cl, err := nodeClient(c)
		if err != nil {
			return err
		}
		if rp, err = cl.Receipt(c.Context, credit.BankID(bank), key, c.String("id")); err != nil {
			return err
		}
	} else {
		cl, err := adminClient(c)
		if err != nil {
			return err
		}
		if rp, err = cl.OperatorReceipt(c.Context, c.String("id")); err != nil {
			return err
		}
	}
	return printJSON(c, rp)
}

func runReceiptsExport(c *cli.Context) (err error) {
	cfg, err := node.LoadConfig(c.String("config"))
	if err != nil {
		return err
	}
	kind := credit.ExportKind(c.String("kind"))
	if kind != credit.ExportAnswered && kind != credit.ExportReceived {
		return fmt.Errorf("--kind %q: want answered or received", c.String("kind"))
	}
	cl, err := runningNodeAdmin(c, c.String("config"), cfg)
	if err != nil {
		return fmt.Errorf("receipts export: %w", err)
	}
	var db *store.DB
	if cl == nil {
		if db, err = store.Open(c.Context, store.Options{Dir: node.StoreDir(cfg)}); err != nil {
			return err
		}
		defer db.Close()
	}
	var w io.Writer = c.App.Writer
	if p := c.String("out"); p != "" {
		f, err := node.CreatePrivate(p)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		w = f
	}
	bw := bufio.NewWriter(w)
	var n int
	switch {
	case cl != nil:
		lw := &lineCounter{w: bw}
		if err := cl.ExportReceipts(c.Context, string(kind), c.Uint64("from"), lw); err != nil {
			return fmt.Errorf("receipts export from the running node: %w", err)
		}
		n = max(lw.lines-1, 0) // the header is no receipt
	case kind == credit.ExportAnswered:
		l, err := receipts.OpenLog(db.Badger(), receipts.LogOptions{})
		if err != nil {
			return err
		}
		defer l.Close()
		n, err = node.ExportAnswered(bw, cfg.Region, l, c.Uint64("from"), time.Now())
		if err != nil {
			return err
		}
	default:
		if n, err = node.ExportReceived(bw, cfg.Region, receipts.NewRequested(db.Badger(), nil), time.Now()); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if !quiet(c) {
		fmt.Fprintf(c.App.ErrWriter, "exported %d receipts\n", n)
	}
	return nil
}

// lineCounter counts the lines written through it.
type lineCounter struct {
	w     io.Writer
	lines int
}

func (l *lineCounter) Write(b []byte) (int, error) {
	l.lines += bytes.Count(b, []byte{'\n'})
	return l.w.Write(b)
}
