package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/atomicfile"
	"github.com/prdcredit/ccnode/node"
)

// Files of a bank key pair (bank keygen).
const (
	bankKeyFile        = "bank.key"
	bankPubFile        = "bank.pub"
	bankDescriptorFile = "bank.json"
)

// bankIDRule is the bank id format, said once for keygen's output and
// register's errors.
const bankIDRule = "2-64 characters of a-z, 0-9, _, . and -, starting with a letter or digit (such as bank-sz-merchants)"

func bankCommand() *cli.Command {
	idFlag := &cli.StringFlag{Name: "id", Required: true, Category: catData, EnvVars: []string{"CCNODE_BANK"},
		Usage: "the bank's id: " + bankIDRule}
	return &cli.Command{
		Name:  "bank",
		Usage: "a bank's key pair, and its registration and retirement on the ledger",
		Description: "A bank signs its queries with an ed25519 key; its home region registers the public key\n" +
			"on the ledger, and every region checks each query against it. 'register' and 'retire'\n" +
			"are ledger transactions through the home node's admin API.",
		Subcommands: []*cli.Command{
			{
				Name:  "keygen",
				Usage: "make a bank's ed25519 key pair",
				Description: "Writes DIR/" + bankKeyFile + " (the private key, PKCS#8 PEM: 'ccnode query --key' signs with it)\n" +
					"and DIR/" + bankPubFile + " (the public key, PEM: 'ccnode bank register --pub-key'), both mode 0600,\n" +
					"and prints the public key. With --id and --region also DIR/" + bankDescriptorFile + ", the bank's\n" +
					"descriptor for 'ccnode consortium bootstrap --bank'. Refuses to overwrite a key.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Category: catOutput, Usage: "folder to write the key pair to"},
					&cli.StringFlag{Name: "id", Category: catData, Usage: "the bank's id, for the descriptor: " + bankIDRule},
					&cli.StringFlag{Name: "region", Category: catData, Usage: "the bank's home region, for the descriptor"},
					&cli.StringFlag{Name: "name", Category: catData, Usage: "the bank's name, for the descriptor"},
				},
				Action: runBankKeygen,
			},
			{
				Name:  "register",
				Usage: "register a bank of this region on the ledger, or change its key (admin)",
				Description: "Sends the bank's id and public key to the home node's admin API, which registers it\n" +
					"on the ledger in one transaction (home region: the node's). Prints the ledger's record.",
				Flags: append(append([]cli.Flag{}, adminFlags...), idFlag,
					&cli.StringFlag{Name: "pub-key", Required: true, Category: catData,
						Usage: "the bank's public key: " + bankPubFile + " of 'ccnode bank keygen' (PEM), or a file holding it in base64"},
					&cli.StringFlag{Name: "name", Category: catData, Usage: "the bank's name on the ledger"},
				),
				Action: runBankRegister,
			},
			{
				Name:  "retire",
				Usage: "retire a bank of this region on the ledger: its queries are refused (admin)",
				Flags: append(append([]cli.Flag{}, adminFlags...), idFlag),
				Action: func(c *cli.Context) error {
					id := credit.BankID(c.String("id"))
					if err := credit.ValidateBankID(id); err != nil {
						return fmt.Errorf("bank retire: --id: %w", err)
					}
					cl, err := adminClient(c)
					if err != nil {
						return err
					}
					rec, err := cl.RetireBank(c.Context, id)
					if err != nil {
						return fmt.Errorf("bank retire %s at %s: %w", id, cl.Admin, err)
					}
					return printJSON(c, rec)
				},
			},
		},
	}
}

func runBankKeygen(c *cli.Context) error {
	dir := c.String("out")
	id, region := credit.BankID(c.String("id")), credit.RegionID(c.String("region"))
	if id != "" {
		if err := credit.ValidateBankID(id); err != nil {
			return fmt.Errorf("bank keygen: --id: %w", err)
		}
	}
	if region != "" {
		if err := checkRegion("bank keygen: --region", region); err != nil {
			return err
		}
	}
	if (id == "") != (region == "") {
		return errors.New("bank keygen: give both --id and --region for a descriptor, or neither")
	}
	keyPath, pubPath := filepath.Join(dir, bankKeyFile), filepath.Join(dir, bankPubFile)
	if _, err := os.Stat(pubPath); err == nil {
		return fmt.Errorf("bank keygen: %s exists; not overwriting it", pubPath)
	}
	key, err := node.GenerateKeyFile(keyPath)
	if err != nil {
		return fmt.Errorf("bank keygen: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("bank keygen: %w", err)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "bank key pair in %s\n  private key: %s (mode 0600; the bank signs its queries with it: ccnode query --key)\n  public key:  %s\n  pub_key:     %s (base64, as the ledger record holds it)\n",
		dir, keyPath, pubPath, base64.StdEncoding.EncodeToString(pub))
	if id != "" {
		d := node.BankDescriptor{Format: node.BankFormat, ID: id, Name: c.String("name"), Region: region, PubKey: pub}
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return err
		}
		descPath := filepath.Join(dir, bankDescriptorFile)
		if err := atomicfile.WriteNew(descPath, append(b, '\n'), 0o600); err != nil {
			return fmt.Errorf("bank keygen: %w", err)
		}
		fmt.Fprintf(w, "  descriptor:  %s (for ccnode consortium bootstrap --bank)\n", descPath)
	} else {
		id = "ID"
		fmt.Fprintf(w, "  bank id:     %s\n", bankIDRule)
	}
	fmt.Fprintf(w, "Register it at its home node with: ccnode bank register --id %s --pub-key %s\n", id, pubPath)
	return nil
}

func runBankRegister(c *cli.Context) error {
	id := credit.BankID(c.String("id"))
	if err := credit.ValidateBankID(id); err != nil {
		return fmt.Errorf("bank register: --id: %w", err)
	}
	pub, err := readBankPub(c.String("pub-key"))
	if err != nil {
		return fmt.Errorf("bank register: --pub-key: %w", err)
	}
	cl, err := adminClient(c)
	if err != nil {
		return err
	}
	rec, err := cl.RegisterBankRecord(c.Context, credit.BankMember{ID: id, Name: c.String("name"), PubKey: pub})
	if err != nil {
		return fmt.Errorf("bank register %s at %s: %w", id, cl.Admin, err)
	}
	return printJSON(c, rec)
}

// readBankPub reads a bank's public key: the PEM bank keygen writes, or
// the key in base64 (as a ledger record or 'keygen' prints it).
func readBankPub(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type == "PRIVATE KEY" {
			return nil, fmt.Errorf("%s is a private key: give the public one (%s), which is all the node needs", path, bankPubFile)
		}
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("%s: PEM block %s, want PUBLIC KEY", path, credit.Quote(blk.Type))
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%s: a %T key, want ed25519", path, k)
		}
		return pub, nil
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%s is neither a PEM public key nor a %d-byte ed25519 key in base64", path, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}
