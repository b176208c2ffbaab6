package fabricnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// FabricVersion pins Hyperledger Fabric's module. Tags v2.x/v3.x are not
// valid module versions (Fabric's go.mod has no /v3 suffix) and the proxy
// here refuses to list versions, so the pin is the pseudo-version of the
// main branch (Fabric 3.1.4-dev) that resolves; it needs Go 1.26.1+.
const FabricVersion = "v1.4.0-rc1.0.20260423151550-2190a1c8e067"

// Binaries are the Fabric programs the local network needs.
var Binaries = []string{"peer", "orderer", "cryptogen", "configtxgen", "osnadmin"}

// toolsGoMod and toolsGo make a throwaway module whose only job is to pin
// Fabric so `go build` can build its commands: `go install pkg@version`
// fails here because it asks the proxy for the refused version list.
const toolsGoMod = "module ccnode.local/fabrictools\n\ngo 1.26\n\nrequire github.com/hyperledger/fabric " + FabricVersion + "\n"

const toolsGo = `//go:build tools

package tools

import (
	_ "github.com/hyperledger/fabric/cmd/configtxgen"
	_ "github.com/hyperledger/fabric/cmd/cryptogen"
	_ "github.com/hyperledger/fabric/cmd/orderer"
	_ "github.com/hyperledger/fabric/cmd/osnadmin"
	_ "github.com/hyperledger/fabric/cmd/peer"
)
`

// DefaultBinDir is where binaries are cached: $CCNODE_FABRIC_BIN, or
// .cache/fabric/<pin>/bin under the repository root (found from the
// working directory), or under the user cache directory.
func DefaultBinDir() string {
	if d := os.Getenv("CCNODE_FABRIC_BIN"); d != "" {
		return d
	}
	if root := repoRoot(); root != "" {
		return filepath.Join(root, ".cache", "fabric", FabricVersion, "bin")
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "ccnode", "fabric", FabricVersion, "bin")
}

func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/prdcredit/ccnode\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func haveBinaries(dir string) bool {
	for _, b := range Binaries {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// EnsureBinaries builds Fabric's binaries into dir unless they are there.
// The folder is named after the pin, so changing the pin rebuilds.
// First build: about 3 minutes of download and 2-4 of compiling on 2 cores.
func EnsureBinaries(ctx context.Context, dir string, log func(string)) error {
	if haveBinaries(dir) {
		return nil
	}
	work, err := os.MkdirTemp("", "ccnode-fabric-tools-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(toolsGoMod), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "tools.go"), []byte(toolsGo), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	run := func(args ...string) error {
		if log != nil {
			log("fabric binaries: go " + strings.Join(args, " "))
		}
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, tail(out, 40))
		}
		return nil
	}
	if err := run("mod", "tidy"); err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, b := range Binaries {
		args = append(args, "github.com/hyperledger/fabric/cmd/"+b)
	}
	if err := run(args...); err != nil {
		return err
	}
	if !haveBinaries(dir) {
		return fmt.Errorf("fabric binaries: build finished but %s is incomplete", dir)
	}
	return nil
}

// sampleConfigDir is Fabric's sampleconfig folder in the module cache,
// where core.yaml and orderer.yaml come from.
func sampleConfigDir(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "GOMODCACHE")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMODCACHE: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "github.com", "hyperledger", "fabric@"+FabricVersion, "sampleconfig")
	if _, err := os.Stat(filepath.Join(dir, "core.yaml")); err != nil {
		return "", fmt.Errorf("fabric sample config not in the module cache (%s): build the binaries first: %w", dir, err)
	}
	return dir, nil
}

func tail(b []byte, lines int) string {
	s := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(s) > lines {
		s = s[len(s)-lines:]
	}
	return strings.Join(s, "\n")
}
