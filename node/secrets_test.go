package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestOpenRefusesOpenSecrets: the node does not start on a secret file
// its group or others may read, and says which file and how to fix it.
func TestOpenRefusesOpenSecrets(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits")
	}
	for _, tt := range []struct {
		key  string
		file func(Config) string
	}{
		{"key_file", func(c Config) string { return c.KeyFile }},
		{"admin.operators_file", func(c Config) string { return c.Admin.OperatorsFile }},
		{"p2p.psk_file", func(c Config) string { return c.P2P.PSKFile }},
		{"http.tls_key_file", func(c Config) string { return c.HTTP.TLSKeyFile }},
	} {
		for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
			t.Run(tt.key+"/"+mode.String(), func(t *testing.T) {
				dir := t.TempDir()
				cfg := DefaultConfig("440300", dir)
				cfg.P2P.PSKFile = filepath.Join(dir, "swarm.psk")
				cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
				if _, err := GenerateKeyFile(cfg.KeyFile); err != nil {
					t.Fatal(err)
				}
				if err := WriteDevTLS(cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile, "t", nil, time.Now()); err != nil {
					t.Fatal(err)
				}
				if _, err := AddOperator(cfg.Admin.OperatorsFile, "admin"); err != nil {
					t.Fatal(err)
				}
				os.WriteFile(cfg.P2P.PSKFile, []byte("secret\n"), 0o600)
				p := tt.file(cfg)
				if err := os.Chmod(p, mode); err != nil {
					t.Fatal(err)
				}
				r, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
				if err == nil {
					r.Close()
					t.Fatalf("started with %s mode %v", tt.key, mode)
				}
				var ce *ConfigError
				var se *SecretFileError
				if !errors.As(err, &ce) || ce.Key != tt.key || !errors.As(err, &se) || se.Path != p {
					t.Fatalf("error %v, want a SecretFileError for %s (%s)", err, tt.key, p)
				}
				want := fmt.Sprintf("config %s: permissions %04o for %s are too open; run chmod 600 %s", tt.key, mode, p, p)
				if err.Error() != want {
					t.Fatalf("message %q, want %q", err, want)
				}
			})
		}
	}
}

func TestCreatePrivate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "export.jsonl")
	os.WriteFile(p, []byte("old"), 0o644)
	f, err := CreatePrivate(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new")
	f.Close()
	fi, _ := os.Stat(p)
	b, _ := os.ReadFile(p)
	if fi.Mode().Perm() != 0o600 || string(b) != "new" {
		t.Fatalf("mode %v, content %q", fi.Mode(), b)
	}
}
