package node

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSampleConfigOnFabricLoads: the config init writes for a node on
// Fabric (no embedded_dir) loads back as written and validates. The
// sample used to leave embedded_dir empty unquoted, a YAML null that
// kept the default folder, so `run` refused the file with "set exactly
// one of ledger.embedded_dir, ledger.embedded_url and ledger.fabric_gateway".
func TestSampleConfigOnFabricLoads(t *testing.T) {
	want := DefaultConfig("440100", "/srv/ccnode/440100")
	want.Ledger.EmbeddedDir, want.Ledger.FabricGateway, want.Ledger.MSPID = "", "/srv/fabric/connection/440100.yaml", "GZMSP"
	path := filepath.Join(t.TempDir(), "ccnode.yaml")
	if err := os.WriteFile(path, SampleConfig(want), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("the sample config of a node on Fabric does not validate: %v", err)
	}
	if got.Ledger != want.Ledger {
		t.Fatalf("ledger section loads back as %+v, want %+v", got.Ledger, want.Ledger)
	}
}
