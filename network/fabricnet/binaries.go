package fabricnet

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// FabricVersion pins Hyperledger Fabric's module; tools/go.mod requires the
// same version (a test holds the two together). Tags v2.x/v3.x are not valid
// module versions (Fabric's go.mod has no /v3 suffix) and the proxy here
// refuses to list versions, so the pin is the pseudo-version of the main
// branch (Fabric 3.1.4-dev); it needs Go 1.26.1 or later.
const FabricVersion = "v1.4.0-rc1.0.20260423151550-2190a1c8e067"

// Binaries are the Fabric programs a local network needs.
var Binaries = []string{"peer", "orderer", "cryptogen", "configtxgen", "configtxlator", "osnadmin"}

// BinDir is a folder holding Fabric's binaries.
type BinDir string

// Path is the path of one binary.
func (d BinDir) Path(name string) string { return filepath.Join(string(d), name) }

// pinFile records the pin a folder was built for, so a changed pin rebuilds.
const pinFile = ".pin"

// Complete reports whether every binary is there, built for FabricVersion.
// A folder without a pin stamp was filled by someone else (a release
// tarball, say) and is taken as it is.
func (d BinDir) Complete() bool {
	for _, b := range Binaries {
		fi, err := os.Stat(d.Path(b))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	pin, err := os.ReadFile(d.Path(pinFile))
	return err != nil || strings.TrimSpace(string(pin)) == FabricVersion
}

// DefaultBinDir is $CCNODE_FABRIC_BIN, else .cache/fabric/<pin>/bin under the
// ccnode repository that contains the working directory, else the same
// under the user's cache directory. The pin in the path means a new pin
// builds into a new folder and the old one stays usable.
func DefaultBinDir() string {
	if d := os.Getenv("CCNODE_FABRIC_BIN"); d != "" {
		return d
	}
	if root := moduleRoot(); root != "" {
		return filepath.Join(root, ".cache", "fabric", FabricVersion, "bin")
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "ccnode", "fabric", FabricVersion, "bin")
}

// moduleRoot is the root of the ccnode module containing the working
// directory, or "" outside it.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			if bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/prdcredit/ccnode\n")) ||
				bytes.Contains(b, []byte("\nmodule github.com/prdcredit/ccnode\n")) {
				return dir
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// The build itself is build-binaries.sh, so CI and Go run the same steps.
//
//go:embed build-binaries.sh
var buildScript string

// Outside the repository there is no tools/ folder; these rebuild it.
const (
	toolsGoMod = "module ccnode.local/fabrictools\n\ngo 1.26.1\n\nrequire github.com/hyperledger/fabric " + FabricVersion + "\n"
	toolsGo    = "//go:build tools\n\npackage tools\n\nimport (\n" +
		"\t_ \"github.com/hyperledger/fabric/cmd/configtxgen\"\n" +
		"\t_ \"github.com/hyperledger/fabric/cmd/configtxlator\"\n" +
		"\t_ \"github.com/hyperledger/fabric/cmd/cryptogen\"\n" +
		"\t_ \"github.com/hyperledger/fabric/cmd/orderer\"\n" +
		"\t_ \"github.com/hyperledger/fabric/cmd/osnadmin\"\n" +
		"\t_ \"github.com/hyperledger/fabric/cmd/peer\"\n)\n"
)

// EnsureBinaries builds Fabric's binaries from the Go module proxy into dir
// (default DefaultBinDir()) unless they are there for FabricVersion. Cold,
// on 2 cores, that is several minutes (download, then compile); afterwards
// it returns at once. Concurrent callers (parallel test binaries) build once:
// the script holds a lock on the folder.
func EnsureBinaries(ctx context.Context, dir string) (BinDir, error) {
	if dir == "" {
		dir = DefaultBinDir()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("fabric binaries: %w", err)
	}
	d := BinDir(abs)
	if d.Complete() {
		return d, nil
	}
	if _, err := exec.LookPath("go"); err != nil {
		return "", fmt.Errorf("fabric binaries: %s lacks Fabric's %s and building them needs the go command (Go 1.26.1 or later) on PATH: install Go, or put Fabric %s's binaries in a folder named by --bin-dir or CCNODE_FABRIC_BIN: %w",
			abs, strings.Join(Binaries, ", "), FabricVersion, err)
	}
	tools := ""
	if root := moduleRoot(); root != "" {
		tools = filepath.Join(root, "network", "fabricnet", "tools")
		if _, err := os.Stat(filepath.Join(tools, "go.mod")); err != nil {
			tools = ""
		}
	}
	if tools == "" {
		tmp, err := os.MkdirTemp("", "ccnode-fabric-tools-")
		if err != nil {
			return "", fmt.Errorf("fabric binaries: %w", err)
		}
		defer os.RemoveAll(tmp)
		if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte(toolsGoMod), 0o644); err != nil {
			return "", fmt.Errorf("fabric binaries: %w", err)
		}
		if err := os.WriteFile(filepath.Join(tmp, "tools.go"), []byte(toolsGo), 0o644); err != nil {
			return "", fmt.Errorf("fabric binaries: %w", err)
		}
		tools = tmp
	}
	cmd := exec.CommandContext(ctx, "bash", "-c", buildScript, "build-binaries.sh", abs)
	cmd.Env = append(os.Environ(), "CCNODE_FABRIC_TOOLS="+tools)
	// go build forks compilers; cancelling must stop them too, so the script
	// gets a process group of its own and the whole group is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
		}
		return "", fmt.Errorf("fabric binaries: build-binaries.sh %s: %w\n%s", abs, err, tail(out.Bytes(), 40))
	}
	if !d.Complete() {
		return "", fmt.Errorf("fabric binaries: build finished but %s is incomplete:\n%s", abs, tail(out.Bytes(), 20))
	}
	return d, nil
}

// SampleConfig finds Fabric's sample core.yaml and orderer.yaml: next to the
// binaries (build-binaries.sh copies them), in a release tarball's config/
// folder, or in the module cache.
func (d BinDir) SampleConfig(ctx context.Context) (string, error) {
	candidates := []string{d.Path("sampleconfig"), filepath.Join(filepath.Dir(string(d)), "config")}
	if out, err := exec.CommandContext(ctx, "go", "env", "GOMODCACHE").Output(); err == nil {
		candidates = append(candidates, filepath.Join(strings.TrimSpace(string(out)),
			"github.com", "hyperledger", "fabric@"+FabricVersion, "sampleconfig"))
	}
	for _, c := range candidates {
		if _, err := os.Stat(filepath.Join(c, "core.yaml")); err == nil {
			if _, err := os.Stat(filepath.Join(c, "orderer.yaml")); err == nil {
				return c, nil
			}
		}
	}
	return "", fmt.Errorf("fabric sample core.yaml/orderer.yaml not found in %s: rebuild the binaries (network/fabricnet/build-binaries.sh)",
		strings.Join(candidates, ", "))
}

// tail is the last lines of a command's output, for error messages.
func tail(b []byte, lines int) string {
	s := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(s) > lines {
		s = s[len(s)-lines:]
	}
	return strings.Join(s, "\n")
}
