package fabricnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The channel configuration is read and changed as configtxlator's JSON
// (Fabric's own proto<->JSON mapping), held in generic maps: only the few
// keys a change touches are named here, the rest passes through unread.

// ErrChannelConfig: the channel configuration does not have the shape
// Fabric gives it (a key missing, a value of another type).
var ErrChannelConfig = errors.New("fabricnet: unexpected channel configuration")

// decodeProto turns a protobuf file of type typ (common.Block,
// common.ConfigUpdate, ...) into JSON with configtxlator.
func (p *plan) decodeProto(ctx context.Context, typ, in string) (map[string]any, error) {
	out := strings.TrimSuffix(in, filepath.Ext(in)) + ".json"
	if _, err := p.run(ctx, nil, "configtxlator", "proto_decode", "--type", typ, "--input", in, "--output", out); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	v, err := decodeJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", out, err)
	}
	return v, nil
}

// decodeJSON reads a JSON object, numbers kept as written so 64-bit
// versions and sizes stay exact.
func decodeJSON(b []byte) (map[string]any, error) {
	var v map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return v, d.Decode(&v)
}

// encodeProto writes v, configtxlator JSON of type typ, as protobuf to out.
func (p *plan) encodeProto(ctx context.Context, typ string, v any, out string) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	in := strings.TrimSuffix(out, filepath.Ext(out)) + ".json"
	if err := os.WriteFile(in, b, 0o644); err != nil {
		return err
	}
	_, err = p.run(ctx, nil, "configtxlator", "proto_encode", "--type", typ, "--input", in, "--output", out)
	return err
}

// fetchConfig is the channel's current configuration (common.Config JSON),
// from the newest configuration block the orderer has, fetched by region
// r's admin into work.
func (p *plan) fetchConfig(ctx context.Context, work string, r regionPlan) (map[string]any, error) {
	block := filepath.Join(work, "config_block.pb")
	if _, err := p.run(ctx, p.adminEnv(r), "peer", "channel", "fetch", "config", block, "-c", p.cfg.Channel,
		"-o", addr(p.OrdererPort), "--tls", "--cafile", p.ordererCA()); err != nil {
		return nil, err
	}
	b, err := p.decodeProto(ctx, "common.Block", block)
	if err != nil {
		return nil, err
	}
	return blockConfig(b)
}

// blockConfig is data.data[0].payload.data.config of a configuration block.
func blockConfig(block map[string]any) (map[string]any, error) {
	data, err := path(block, "data")
	if err != nil {
		return nil, err
	}
	envs, ok := data["data"].([]any)
	if !ok || len(envs) != 1 {
		return nil, fmt.Errorf("%w: a configuration block holds one envelope, this one %v", ErrChannelConfig, data["data"])
	}
	env, ok := envs[0].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: envelope is %T", ErrChannelConfig, envs[0])
	}
	return path(env, "payload", "data", "config")
}

// path walks nested objects by key.
func path(v map[string]any, keys ...string) (map[string]any, error) {
	for i, k := range keys {
		next, ok := v[k].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: no object at %s", ErrChannelConfig, strings.Join(keys[:i+1], "."))
		}
		v = next
	}
	return v, nil
}

// applicationGroup is channel_group.groups.Application of a config.
func applicationGroup(config map[string]any) (map[string]any, error) {
	return path(config, "channel_group", "groups", "Application")
}

// Policy is one of the channel's Application policies in the notation of
// configtx.yaml, such as OutOf(2, 'SZMSP.peer', 'GZMSP.peer', 'ZHMSP.peer').
type Policy struct {
	Name string // Admins, Endorsement, ...
	Rule string
}

// policyNames are the Application policies a change of membership moves
// and an operator wants to see, in that order.
var policyNames = []string{"Admins", "LifecycleEndorsement", "Endorsement"}

// applicationPolicies formats the Application group's policyNames.
func applicationPolicies(config map[string]any) ([]Policy, error) {
	app, err := applicationGroup(config)
	if err != nil {
		return nil, err
	}
	var out []Policy
	for _, name := range policyNames {
		pol, err := path(app, "policies", name, "policy")
		if err != nil {
			return nil, err
		}
		rule, err := formatPolicy(pol)
		if err != nil {
			return nil, fmt.Errorf("Application policy %s: %w", name, err)
		}
		out = append(out, Policy{Name: name, Rule: rule})
	}
	return out, nil
}

// Fabric's common.Policy types, as configtxlator writes them.
const (
	policySignature    = 1
	policyImplicitMeta = 3
)

// formatPolicy writes a common.Policy (configtxlator JSON) as
// configtx.yaml's rule: a signature policy as OutOf(n, 'MSP.role', ...),
// an implicit meta policy as "MAJORITY Admins".
func formatPolicy(pol map[string]any) (string, error) {
	typ, err := jsonInt(pol["type"])
	if err != nil {
		return "", fmt.Errorf("%w: policy type: %w", ErrChannelConfig, err)
	}
	value, ok := pol["value"].(map[string]any)
	if !ok {
		return "", fmt.Errorf("%w: policy without value", ErrChannelConfig)
	}
	switch typ {
	case policyImplicitMeta:
		return fmt.Sprintf("%v %v", value["rule"], value["sub_policy"]), nil
	case policySignature:
		var ids []string
		list, _ := value["identities"].([]any)
		for _, it := range list {
			id, _ := it.(map[string]any)
			principal, _ := id["principal"].(map[string]any)
			msp, _ := principal["msp_identifier"].(string)
			role, _ := principal["role"].(string)
			if msp == "" || role == "" {
				return "", fmt.Errorf("%w: identity %v is no MSP role", ErrChannelConfig, it)
			}
			ids = append(ids, fmt.Sprintf("'%s.%s'", msp, strings.ToLower(role)))
		}
		rule, _ := value["rule"].(map[string]any)
		return formatRule(rule, ids)
	default:
		return "", fmt.Errorf("%w: policy type %d", ErrChannelConfig, typ)
	}
}

// formatRule writes a SignaturePolicy: n_out_of nests, signed_by names
// one of ids (a oneof, so a rule without n_out_of is signed_by, 0 when
// omitted).
func formatRule(rule map[string]any, ids []string) (string, error) {
	if rule == nil {
		return "", fmt.Errorf("%w: signature policy without rule", ErrChannelConfig)
	}
	if nof, ok := rule["n_out_of"].(map[string]any); ok {
		n, err := jsonInt(nof["n"])
		if err != nil {
			return "", fmt.Errorf("%w: n_out_of.n: %w", ErrChannelConfig, err)
		}
		parts := []string{fmt.Sprint(n)}
		rules, _ := nof["rules"].([]any)
		for _, r := range rules {
			sub, _ := r.(map[string]any)
			s, err := formatRule(sub, ids)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return "OutOf(" + strings.Join(parts, ", ") + ")", nil
	}
	i, err := jsonInt(rule["signed_by"])
	if err != nil {
		return "", fmt.Errorf("%w: signed_by: %w", ErrChannelConfig, err)
	}
	if i < 0 || i >= len(ids) {
		return "", fmt.Errorf("%w: signed_by %d of %d identities", ErrChannelConfig, i, len(ids))
	}
	return ids[i], nil
}

// jsonInt reads a number configtxlator wrote as a JSON number or, for
// 64-bit fields, a string; an absent one is 0, which protobuf's JSON may
// leave out.
func jsonInt(v any) (int, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	case float64:
		return int(x), nil
	case nil:
		return 0, nil
	default:
		return 0, fmt.Errorf("%T is no number", v)
	}
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		return 0, fmt.Errorf("%q is no number", s)
	}
	return n, nil
}

// ChannelPolicies reads the channel's Application policies Admins,
// LifecycleEndorsement and Endorsement (which the contract's definition
// inherits) from the newest configuration block, as the first region's
// admin.
func (n *Network) ChannelPolicies(ctx context.Context) ([]Policy, error) {
	p, err := n.plan(Config{})
	if err != nil {
		return nil, err
	}
	if len(p.Regions) == 0 {
		return nil, fmt.Errorf("%w: the network in %s has no region", ErrNoRegion, n.Dir)
	}
	work, err := os.MkdirTemp(n.Dir, "channel-config-")
	if err != nil {
		return nil, fmt.Errorf("fabricnet: %w", err)
	}
	defer os.RemoveAll(work)
	config, err := p.fetchConfig(ctx, work, p.Regions[0])
	if err != nil {
		return nil, fmt.Errorf("fabricnet: channel policies: %w", err)
	}
	return applicationPolicies(config)
}
