package node

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/prdcredit/ccnode/credit"
)

// A consortium starts from its members' public descriptors: each region's
// `ccnode init` writes one (DATA_DIR/member.json), each bank's key
// generation may write one, and `ccnode consortium bootstrap` composes them
// into the bootstrap file a new embedded ledger starts with
// (ledger.bootstrap_file). Every check here names the file and the field,
// so that the contract's refusal ("peer_id missing") is never the first
// word an operator sees.

// Descriptor formats.
const (
	MemberFormat    = "ccnode-member/1"
	BankFormat      = "ccnode-bank/1"
	BootstrapFormat = "ccnode-bootstrap/1"
)

// MemberDescriptor is a region's public description: what the other
// regions need to admit it. It holds no secret.
type MemberDescriptor struct {
	Format    string          `json:"format"`
	Region    credit.RegionID `json:"region"`
	Name      string          `json:"name,omitempty"`
	Divisions []string        `json:"divisions"`
	MSPID     string          `json:"msp_id"`
	PeerID    string          `json:"peer_id"`
	// PubKey is the node's ed25519 public key, standard base64 (as
	// encoding/json writes a []byte): the form of pub_key in a ledger
	// record and a bootstrap file.
	PubKey    []byte   `json:"pub_key"`
	Addrs     []string `json:"addrs,omitempty"`
	NetworkID string   `json:"network_id"`
}

// BankDescriptor is a bank's public description, for a bootstrap file.
type BankDescriptor struct {
	Format string          `json:"format"`
	ID     credit.BankID   `json:"id"`
	Name   string          `json:"name,omitempty"`
	Region credit.RegionID `json:"region"`
	PubKey []byte          `json:"pub_key"`
}

// BootstrapFile is ledger.bootstrap_file: the first members of a new
// embedded ledger, as the contract's Bootstrap takes them.
type BootstrapFile struct {
	Format  string                `json:"format,omitempty"`
	Regions []credit.RegionMember `json:"regions"`
	Banks   []credit.BankMember   `json:"banks"`
}

// FieldError names the file and field of a descriptor or bootstrap file
// that is wrong.
type FieldError struct {
	File  string
	Field string
	Err   error
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.File + ": " + e.Err.Error()
	}
	return e.File + ": " + e.Field + ": " + e.Err.Error()
}
func (e *FieldError) Unwrap() error { return e.Err }

var errMissing = errors.New("missing")

// RegionDivisions is the division prefixes a region serves by default:
// its id without the trailing zeros (440300 serves 4403, district 440305
// serves 440305).
func RegionDivisions(region credit.RegionID) []string {
	return []string{strings.TrimRight(string(region), "0")}
}

// NewMemberDescriptor describes the region cfg configures with the node's
// public key. It lists p2p.announce, or else the listen addresses with a
// concrete port (a node publishes the addresses it really listens on when
// it starts, so port 0 tells the others nothing).
func NewMemberDescriptor(cfg Config, pub ed25519.PublicKey) (MemberDescriptor, error) {
	pid, err := PeerID(pub)
	if err != nil {
		return MemberDescriptor{}, err
	}
	d := MemberDescriptor{Format: MemberFormat, Region: cfg.Region, Divisions: RegionDivisions(cfg.Region),
		MSPID: cfg.Ledger.MSPID, PeerID: pid, PubKey: pub, NetworkID: cfg.P2P.NetworkID}
	for _, r := range credit.PearlRiverDelta() {
		if r.ID == cfg.Region {
			d.Name = r.Name
		}
	}
	addrs := cfg.P2P.Announce
	if len(addrs) == 0 {
		addrs = cfg.P2P.Listen
	}
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return MemberDescriptor{}, fmt.Errorf("p2p address %s: %w", a, err)
		}
		if port, err := m.ValueForProtocol(ma.P_TCP); err == nil && port == "0" {
			continue
		}
		if port, err := m.ValueForProtocol(ma.P_UDP); err == nil && port == "0" {
			continue
		}
		d.Addrs = append(d.Addrs, a)
	}
	return d, d.Validate()
}

// Validate checks the descriptor on its own; the error's Field names the
// bad field (File is left for the caller).
func (d MemberDescriptor) Validate() error {
	bad := func(field string, err error) error { return &FieldError{Field: field, Err: err} }
	if d.Format != MemberFormat {
		return bad("format", fmt.Errorf("%s, want %s (written by 'ccnode init')", credit.Quote(d.Format), MemberFormat))
	}
	if err := credit.ValidateRegionID(d.Region); err != nil {
		return bad("region", err)
	}
	if len(d.Divisions) == 0 {
		return bad("divisions", errMissing)
	}
	if _, err := credit.NewRegionMap([]credit.Region{{ID: d.Region, Divisions: d.Divisions}}); err != nil {
		return bad("divisions", err)
	}
	if d.MSPID == "" {
		return bad("msp_id", errMissing)
	}
	if len(d.PubKey) != ed25519.PublicKeySize {
		return bad("pub_key", fmt.Errorf("%d bytes, want a %d-byte ed25519 public key in standard base64 ('ccnode keys show' prints it)", len(d.PubKey), ed25519.PublicKeySize))
	}
	if d.PeerID == "" {
		return bad("peer_id", errMissing)
	}
	if pid, err := PeerID(d.PubKey); err != nil {
		return bad("pub_key", err)
	} else if pid != d.PeerID {
		return bad("peer_id", fmt.Errorf("%s is not the peer id of pub_key (%s)", credit.Quote(d.PeerID), pid))
	}
	for i, a := range d.Addrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return bad(fmt.Sprintf("addrs[%d]", i), err)
		}
	}
	if d.NetworkID == "" {
		return bad("network_id", errMissing)
	}
	return nil
}

// Validate checks a bank descriptor on its own.
func (b BankDescriptor) Validate() error {
	bad := func(field string, err error) error { return &FieldError{Field: field, Err: err} }
	if b.Format != BankFormat {
		return bad("format", fmt.Errorf("%s, want %s (written by 'ccnode bank keygen --id --region')", credit.Quote(b.Format), BankFormat))
	}
	if err := credit.ValidateBankID(b.ID); err != nil {
		return bad("id", err)
	}
	if err := credit.ValidateRegionID(b.Region); err != nil {
		return bad("region", err)
	}
	if len(b.PubKey) != ed25519.PublicKeySize {
		return bad("pub_key", fmt.Errorf("%d bytes, want a %d-byte ed25519 public key in standard base64", len(b.PubKey), ed25519.PublicKeySize))
	}
	return nil
}

// ReadDescriptor decodes a JSON descriptor strictly: a misspelt field is
// an error naming the file, not a field silently left empty.
func ReadDescriptor(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &FieldError{File: path, Err: fmt.Errorf("not a descriptor: %w", err)}
	}
	return nil
}

// NamedMember is a member descriptor with the file it came from.
type NamedMember struct {
	File string
	MemberDescriptor
}

// NamedBank is a bank descriptor with the file it came from.
type NamedBank struct {
	File string
	BankDescriptor
}

// ComposeBootstrap checks each descriptor and the set (one network id; no
// region, MSP id, key or peer id twice; no division prefix claimed by two
// regions; every bank's home region among them) and returns the bootstrap
// file. Nested prefixes (a city's 4403 and a district's 440305) are allowed:
// a code belongs to the longest prefix that matches it.
func ComposeBootstrap(members []NamedMember, banks []NamedBank) (BootstrapFile, error) {
	if len(members) == 0 {
		return BootstrapFile{}, errors.New("no member descriptor: give each region's member.json")
	}
	in := func(file string, err error) error {
		var fe *FieldError
		if errors.As(err, &fe) && fe.File == "" {
			fe.File = file
			return fe
		}
		return &FieldError{File: file, Err: err}
	}
	f := BootstrapFile{Format: BootstrapFormat, Banks: []credit.BankMember{}}
	regionFile, mspFile, keyFile, divFile := map[credit.RegionID]string{}, map[string]string{}, map[string]string{}, map[string]string{}
	network, networkFile := "", ""
	for _, m := range members {
		d := m.MemberDescriptor
		if err := d.Validate(); err != nil {
			return BootstrapFile{}, in(m.File, err)
		}
		twice := func(field, value string, seen map[string]string) error {
			if other, ok := seen[value]; ok {
				return &FieldError{File: m.File, Field: field, Err: fmt.Errorf("%s is also in %s", value, other)}
			}
			seen[value] = m.File
			return nil
		}
		if other, ok := regionFile[d.Region]; ok {
			return BootstrapFile{}, &FieldError{File: m.File, Field: "region", Err: fmt.Errorf("region %s is also described by %s", d.Region, other)}
		}
		regionFile[d.Region] = m.File
		if err := twice("msp_id", d.MSPID, mspFile); err != nil {
			return BootstrapFile{}, err
		}
		if other, ok := keyFile[d.PeerID]; ok {
			return BootstrapFile{}, &FieldError{File: m.File, Field: "pub_key", Err: fmt.Errorf("the same node key (peer id %s) as %s: each region needs its own", d.PeerID, other)}
		}
		keyFile[d.PeerID] = m.File
		for _, p := range d.Divisions {
			if other, ok := divFile[p]; ok {
				return BootstrapFile{}, &FieldError{File: m.File, Field: "divisions", Err: fmt.Errorf("division prefix %s is also claimed by %s", p, other)}
			}
			divFile[p] = m.File
		}
		if network == "" {
			network, networkFile = d.NetworkID, m.File
		} else if d.NetworkID != network {
			return BootstrapFile{}, &FieldError{File: m.File, Field: "network_id", Err: fmt.Errorf("%s, but %s says %s: one consortium has one p2p.network_id", credit.Quote(d.NetworkID), networkFile, network)}
		}
		f.Regions = append(f.Regions, credit.RegionMember{ID: d.Region, Name: d.Name, Divisions: d.Divisions, MSPID: d.MSPID,
			PeerID: d.PeerID, Addrs: d.Addrs, PubKey: d.PubKey, Status: credit.StatusActive})
	}
	bankFile := map[credit.BankID]string{}
	for _, b := range banks {
		if err := b.Validate(); err != nil {
			return BootstrapFile{}, in(b.File, err)
		}
		if other, ok := bankFile[b.ID]; ok {
			return BootstrapFile{}, &FieldError{File: b.File, Field: "id", Err: fmt.Errorf("bank %s is also described by %s", b.ID, other)}
		}
		bankFile[b.ID] = b.File
		if _, ok := regionFile[b.Region]; !ok {
			return BootstrapFile{}, &FieldError{File: b.File, Field: "region", Err: fmt.Errorf("home region %s is not among the member descriptors", b.Region)}
		}
		f.Banks = append(f.Banks, credit.BankMember{ID: b.ID, Name: b.Name, Region: b.Region, PubKey: b.PubKey, Status: credit.StatusActive})
	}
	return f, nil
}

// ValidateBootstrap checks a bootstrap file as the contract will, naming
// the member and field: regions[i] (ID).field.
func ValidateBootstrap(f BootstrapFile) error {
	if f.Format != "" && f.Format != BootstrapFormat {
		return &FieldError{Field: "format", Err: fmt.Errorf("%s, want %s", credit.Quote(f.Format), BootstrapFormat)}
	}
	if len(f.Regions) == 0 {
		return &FieldError{Field: "regions", Err: errors.New("no region: compose the file with 'ccnode consortium bootstrap'")}
	}
	var members []NamedMember
	for i, r := range f.Regions {
		// The file has no network id: check everything else as a
		// descriptor of the same values.
		d := MemberDescriptor{Format: MemberFormat, Region: r.ID, Divisions: r.Divisions, MSPID: r.MSPID, PeerID: r.PeerID,
			PubKey: r.PubKey, Addrs: r.Addrs, NetworkID: "-"}
		members = append(members, NamedMember{File: fmt.Sprintf("regions[%d] (%s)", i, r.ID), MemberDescriptor: d})
	}
	var banks []NamedBank
	for i, b := range f.Banks {
		banks = append(banks, NamedBank{File: fmt.Sprintf("banks[%d] (%s)", i, b.ID),
			BankDescriptor: BankDescriptor{Format: BankFormat, ID: b.ID, Name: b.Name, Region: b.Region, PubKey: b.PubKey}})
	}
	_, err := ComposeBootstrap(members, banks)
	return err
}

// MarshalJSON writes the members without updated_at, which the contract
// sets at the bootstrap's transaction: a zero time in the file would only
// mislead a reader.
func (f BootstrapFile) MarshalJSON() ([]byte, error) {
	type region struct {
		ID        credit.RegionID     `json:"id"`
		Name      string              `json:"name,omitempty"`
		Divisions []string            `json:"divisions"`
		MSPID     string              `json:"msp_id"`
		PeerID    string              `json:"peer_id"`
		Addrs     []string            `json:"addrs,omitempty"`
		PubKey    []byte              `json:"pub_key"`
		Status    credit.MemberStatus `json:"status"`
	}
	type bank struct {
		ID     credit.BankID       `json:"id"`
		Name   string              `json:"name,omitempty"`
		Region credit.RegionID     `json:"region"`
		PubKey []byte              `json:"pub_key"`
		Status credit.MemberStatus `json:"status"`
	}
	out := struct {
		Format  string   `json:"format,omitempty"`
		Regions []region `json:"regions"`
		Banks   []bank   `json:"banks"`
	}{Format: f.Format, Regions: []region{}, Banks: []bank{}}
	for _, r := range f.Regions {
		out.Regions = append(out.Regions, region{r.ID, r.Name, r.Divisions, r.MSPID, r.PeerID, r.Addrs, r.PubKey, r.Status})
	}
	for _, b := range f.Banks {
		out.Banks = append(out.Banks, bank{b.ID, b.Name, b.Region, b.PubKey, b.Status})
	}
	return json.Marshal(out)
}
