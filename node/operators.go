package node

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/prdcredit/ccnode/internal/atomicfile"
)

// Operators and their credentials.
//
// Each operator of a node has a name and a token of its own; the node
// keeps only the SHA-256 of each token, in the operators file
// (admin.operators_file), one line per operator:
//
//	NAME SHA256-HEX
//
// `ccnode operator add` appends a line and prints the token once;
// `ccnode operator revoke` removes it. The node reads the file on every
// admin call, so a revocation holds from the next call without a restart:
// the file is a few lines and admin calls are rare.

// Operator is one named operator credential.
type Operator struct {
	Name      string
	TokenHash [sha256.Size]byte
}

// Errors of the operators file and of authentication.
var (
	// ErrNoOperator: the token is no current operator's (never issued,
	// or revoked).
	ErrNoOperator = errors.New("no operator holds this token")
	// ErrOperatorExists: operator add of a name already in the file.
	ErrOperatorExists = errors.New("operator exists")
	// ErrOperatorUnknown: operator revoke of a name not in the file.
	ErrOperatorUnknown = errors.New("no such operator")
	// ErrOperatorsFile: a line of the operators file cannot be read.
	ErrOperatorsFile = errors.New("operators file")
)

var operatorName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidateOperatorName checks an operator's name: 1-64 characters of
// a-z, 0-9, '.', '_' and '-', starting with a letter or digit, so that it
// fits one field of the file and of a log line.
func ValidateOperatorName(name string) error {
	if !operatorName.MatchString(name) {
		return fmt.Errorf("operator name %q: want 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", name)
	}
	return nil
}

// HashOperatorToken is what the operators file keeps of a token.
func HashOperatorToken(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// NewOperatorToken makes a token of 32 random bytes, hex-encoded.
func NewOperatorToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("operator token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ParseOperators reads the operators file's content; path names it in
// errors. Blank lines and lines starting with '#' are skipped.
func ParseOperators(path string, data []byte) ([]Operator, error) {
	var ops []Operator
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 2 {
			return nil, fmt.Errorf("%w %s:%d: want NAME SHA256-HEX", ErrOperatorsFile, path, line)
		}
		if err := ValidateOperatorName(f[0]); err != nil {
			return nil, fmt.Errorf("%w %s:%d: %w", ErrOperatorsFile, path, line, err)
		}
		if seen[f[0]] {
			return nil, fmt.Errorf("%w %s:%d: operator %s listed twice", ErrOperatorsFile, path, line, f[0])
		}
		seen[f[0]] = true
		op := Operator{Name: f[0]}
		if h, err := hex.DecodeString(f[1]); err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("%w %s:%d: token hash of %s is not 64 hex digits", ErrOperatorsFile, path, line, f[0])
		} else {
			copy(op.TokenHash[:], h)
		}
		ops = append(ops, op)
	}
	return ops, sc.Err()
}

// ReadOperators reads the operators file.
func ReadOperators(path string) ([]Operator, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOperatorsFile, err)
	}
	return ParseOperators(path, b)
}

const operatorsHeader = "# ccnode operators: one line per operator, NAME SHA256(token) in hex.\n" +
	"# Edit with 'ccnode operator add NAME' and 'ccnode operator revoke NAME'.\n"

// AddOperator adds an operator to the file at path (created, mode 0600,
// if missing) and returns its new token, which is stored nowhere: the
// caller hands it to the operator once.
func AddOperator(path, name string) (string, error) {
	if err := ValidateOperatorName(name); err != nil {
		return "", err
	}
	ops, err := ReadOperators(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	for _, o := range ops {
		if o.Name == name {
			return "", fmt.Errorf("%w: %s in %s", ErrOperatorExists, name, path)
		}
	}
	tok, err := NewOperatorToken()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	line := ""
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		line = operatorsHeader
	}
	h := HashOperatorToken(tok)
	line += name + " " + hex.EncodeToString(h[:]) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return "", fmt.Errorf("operators file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("operators file %s: %w", path, err)
	}
	return tok, nil
}

// RevokeOperator removes an operator from the file at path. The file is
// replaced whole (written beside it, then renamed), so a node reading it
// meanwhile sees the old list or the new one, never half of it.
func RevokeOperator(path, name string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrOperatorsFile, err)
	}
	if _, err := ParseOperators(path, b); err != nil {
		return err
	}
	var out bytes.Buffer
	found := false
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == name {
			found = true
			continue
		}
		out.WriteString(l)
	}
	if !found {
		return fmt.Errorf("%w: %s in %s", ErrOperatorUnknown, name, path)
	}
	return atomicfile.ReplaceBytes(path, out.Bytes(), 0o600)
}

// OperatorAuth names the operator a presented token belongs to, or
// returns ErrNoOperator.
type OperatorAuth interface {
	Operator(token string) (name string, err error)
}

// OperatorsFile authenticates against the operators file at its path,
// read again on every call so that revocations hold without a restart.
type OperatorsFile string

// Operator implements OperatorAuth.
func (f OperatorsFile) Operator(token string) (string, error) {
	ops, err := ReadOperators(string(f))
	if err != nil {
		return "", err
	}
	return OperatorList(ops).Operator(token)
}

// OperatorList authenticates against a fixed list (an in-process
// consortium's operators).
type OperatorList []Operator

// Operator implements OperatorAuth: the token's hash is compared with
// every operator's in constant time, so the time taken tells nothing of
// which operator, or how much of a hash, matched.
func (l OperatorList) Operator(token string) (string, error) {
	h := HashOperatorToken(token)
	name := ""
	for _, o := range l {
		if subtle.ConstantTimeCompare(h[:], o.TokenHash[:]) == 1 {
			name = o.Name
		}
	}
	if name == "" || token == "" {
		return "", ErrNoOperator
	}
	return name, nil
}
