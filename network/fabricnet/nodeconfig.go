package fabricnet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// writeNodeConfig copies Fabric's sample core.yaml and orderer.yaml into
// <dir>/config with the two edits no environment variable can make to
// core.yaml: no Docker endpoint (the peer's health check would ping Docker
// and fail) and our chaincode-as-a-service builder as the only external
// builder. Everything else is set per process through CORE_*/ORDERER_*
// variables in the child's environment.
func writeNodeConfig(ctx context.Context, bins BinDir, dir, builder string) error {
	sample, err := bins.SampleConfig(ctx)
	if err != nil {
		return err
	}
	core, err := os.ReadFile(filepath.Join(sample, "core.yaml"))
	if err != nil {
		return fmt.Errorf("sample core.yaml: %w", err)
	}
	core, err = editCoreYAML(core, builder)
	if err != nil {
		return fmt.Errorf("sample core.yaml %s: %w", sample, err)
	}
	orderer, err := os.ReadFile(filepath.Join(sample, "orderer.yaml"))
	if err != nil {
		return fmt.Errorf("sample orderer.yaml: %w", err)
	}
	cfgDir := filepath.Join(dir, "config")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "core.yaml"), core, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cfgDir, "orderer.yaml"), orderer, 0o644)
}

// editCoreYAML sets vm.endpoint to "" and chaincode.externalBuilders to our
// builder, editing the YAML tree so the rest of the file (and its comments)
// stays as Fabric wrote it.
func editCoreYAML(in []byte, builder string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(in, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("not a YAML document")
	}
	root := doc.Content[0]
	endpoint, err := lookup(root, "vm", "endpoint")
	if err != nil {
		return nil, err
	}
	*endpoint = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "", Style: yaml.DoubleQuotedStyle}
	builders, err := lookup(root, "chaincode", "externalBuilders")
	if err != nil {
		return nil, err
	}
	var list yaml.Node
	if err := list.Encode([]map[string]any{{"name": "ccnode-ccaas", "path": builder}}); err != nil {
		return nil, err
	}
	*builders = list
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// lookup finds the value node at a path of mapping keys.
func lookup(n *yaml.Node, path ...string) (*yaml.Node, error) {
	for i, key := range path {
		if n.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%v is not a mapping", path[:i])
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == key {
				next = n.Content[j+1]
				break
			}
		}
		if next == nil {
			return nil, fmt.Errorf("no key %v", path[:i+1])
		}
		n = next
	}
	return n, nil
}
