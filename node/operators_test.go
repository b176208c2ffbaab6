package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOperatorsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "operators")
	alice, err := AddOperator(path, "alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := AddOperator(path, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AddOperator(path, "alice"); !errors.Is(err, ErrOperatorExists) {
		t.Fatalf("alice added twice: %v", err)
	}
	if _, err := AddOperator(path, "Alice Smith"); err == nil {
		t.Fatal("a name with a space and capitals was accepted")
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("operators file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), alice) || strings.Contains(string(b), bob) {
		t.Fatal("the operators file holds a token, not only its hash")
	}
	auth := OperatorsFile(path)
	for tok, want := range map[string]string{alice: "alice", bob: "bob"} {
		if got, err := auth.Operator(tok); err != nil || got != want {
			t.Fatalf("token of %s: %q, %v", want, got, err)
		}
	}
	for _, bad := range []string{"", alice[:63], alice + "0", strings.ToUpper(alice)} {
		if got, err := auth.Operator(bad); !errors.Is(err, ErrNoOperator) {
			t.Fatalf("token %q: %q, %v; want ErrNoOperator", bad, got, err)
		}
	}
	if err := RevokeOperator(path, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Operator(alice); !errors.Is(err, ErrNoOperator) {
		t.Fatalf("revoked alice: %v", err)
	}
	if got, err := auth.Operator(bob); err != nil || got != "bob" {
		t.Fatalf("bob after alice's revocation: %q, %v", got, err)
	}
	if err := RevokeOperator(path, "alice"); !errors.Is(err, ErrOperatorUnknown) {
		t.Fatalf("alice revoked twice: %v", err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("operators file after a revocation: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	for _, broken := range []string{"bob\n", "bob zz\n", "bob " + strings.Repeat("ab", 32) + "\nbob " + strings.Repeat("cd", 32) + "\n"} {
		if _, err := ParseOperators("ops", []byte(broken)); !errors.Is(err, ErrOperatorsFile) {
			t.Errorf("%q: %v, want ErrOperatorsFile", broken, err)
		}
	}
}
