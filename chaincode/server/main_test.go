package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestTLSPropertiesFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key, cert, ca := write("key.pem", "KEY"), write("cert.pem", "CERT"), write("ca.pem", "CA")
	for _, tc := range []struct {
		name     string
		env      map[string]string
		wantErr  bool
		disabled bool
		clientCA string
	}{
		{"disabled", map[string]string{"CHAINCODE_TLS_DISABLED": "true"}, false, true, ""},
		{"TLS without a key", map[string]string{"CHAINCODE_TLS_CERT": cert}, true, false, ""},
		{"TLS without a certificate", map[string]string{"CHAINCODE_TLS_KEY": key}, true, false, ""},
		{"TLS with a missing file", map[string]string{"CHAINCODE_TLS_KEY": key, "CHAINCODE_TLS_CERT": filepath.Join(dir, "nope.pem")}, true, false, ""},
		{"TLS", map[string]string{"CHAINCODE_TLS_KEY": key, "CHAINCODE_TLS_CERT": cert}, false, false, ""},
		{"mutual TLS", map[string]string{"CHAINCODE_TLS_KEY": key, "CHAINCODE_TLS_CERT": cert, "CHAINCODE_CLIENT_CA_CERT": ca}, false, false, "CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"CHAINCODE_TLS_DISABLED", "CHAINCODE_TLS_KEY", "CHAINCODE_TLS_CERT", "CHAINCODE_CLIENT_CA_CERT"} {
				t.Setenv(k, tc.env[k])
			}
			p, err := tlsProperties()
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if p.Disabled != tc.disabled || string(p.ClientCACerts) != tc.clientCA {
				t.Fatalf("props = %+v", p)
			}
			if !tc.disabled && (string(p.Key) != "KEY" || string(p.Cert) != "CERT") {
				t.Fatalf("key/cert not read: %+v", p)
			}
		})
	}
}

func TestRunNeedsAddressAndID(t *testing.T) {
	for _, env := range []map[string]string{
		{"CHAINCODE_ID": "ccnode:abc"},
		{"CHAINCODE_SERVER_ADDRESS": "127.0.0.1:0"},
	} {
		t.Setenv("CHAINCODE_SERVER_ADDRESS", env["CHAINCODE_SERVER_ADDRESS"])
		t.Setenv("CHAINCODE_ID", env["CHAINCODE_ID"])
		if err := run(); err == nil {
			t.Fatalf("run with %v started", env)
		}
	}
}

// TestMain lets the test binary act as the server for TestServerListens.
func TestMain(m *testing.M) {
	if os.Getenv("CCNODE_TEST_CHAINCODE_CHILD") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestServerListens starts the server as its own process, the way the
// Fabric tooling does, and waits until it accepts connections.
func TestServerListens(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // free for the child; a brief race with other processes is acceptable in a test
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), "CCNODE_TEST_CHAINCODE_CHILD=1", "CHAINCODE_SERVER_ADDRESS="+addr,
		"CHAINCODE_ID=ccnode_1.0:0000", "CHAINCODE_TLS_DISABLED=true")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("server exited: %v: %s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not listening on %s: %s", addr, stderr.String())
		}
	}
}
