package fabricnet

import (
	"bytes"
	"fmt"
	"text/template"
)

// cryptoConfigTmpl is cryptogen's input: one orderer organisation, one
// peer organisation per region and the auditor's organisation, which has
// no nodes, only its CA and users. Every certificate names localhost and
// 127.0.0.1 so TLS verifies without host name overrides. A region's
// "ccserver" node is only there for its TLS pair: the chaincode server's
// certificate, issued by the region's own TLS CA.
var cryptoConfigTmpl = template.Must(template.New("crypto").Parse(`# Written by fabricnet.Up: one orderer organisation, one peer organisation per region, the auditor's (no peers).
OrdererOrgs:
  - Name: Orderer
    Domain: {{.OrdererDomain}}
    EnableNodeOUs: true
    Specs:
      - Hostname: orderer
        SANS: [localhost, 127.0.0.1]
PeerOrgs:
{{- range .Regions}}
{{- template "region" .}}
{{- end}}
  - Name: {{.Auditor.MSPID}}
    Domain: {{.Auditor.Domain}}
    EnableNodeOUs: true
    Users:
      Count: 1
` + regionCryptoTmpl))

// regionCryptoTmpl is one region's peer organisation in cryptogen's input,
// shared by Up (every region) and AddRegion (the new one only), so a
// region added later gets the same certificates as the first ones.
const regionCryptoTmpl = `{{define "region"}}
  - Name: {{.MSPID}}
    Domain: {{.Domain}}
    EnableNodeOUs: true
    Specs:
      - Hostname: peer0
        SANS: [localhost, 127.0.0.1]
{{- range .Extra}}
      - Hostname: peer{{.Index}}
        SANS: [localhost, 127.0.0.1]
{{- end}}
      - Hostname: ccserver
        SANS: [localhost, 127.0.0.1]
    Users:
      Count: 1
{{- end}}`

// cryptoRegionTmpl is cryptogen's input for a single region (a regionPlan).
var cryptoRegionTmpl = template.Must(template.New("crypto-region").Parse(
	"# Written by fabricnet.AddRegion: the new region's peer organisation only.\nPeerOrgs:{{template \"region\" .}}\n" + regionCryptoTmpl))

// configtxTmpl makes the application channel's genesis block (there is no
// system channel). A majority of regions must endorse every transaction of
// every chaincode (the channel-wide Endorsement policy, which the contract's
// definition inherits), approve every chaincode definition and sign every
// channel change. These name the regions' peers and admins explicitly: an
// ImplicitMeta MAJORITY would count the auditor's peer-less organisation
// too, and then need every region with three of them.
//
// The auditor's organisation reads (Readers) and can never write: its
// Writers policy asks for two signatures of a one-item list, which nothing
// meets, so the orderer refuses any transaction it signs. Proposals are
// allowed to every Reader (peer/Propose), because a gateway evaluate is a
// proposal: simulating changes nothing, and what reaches the ledger still
// needs a Writer's signature and the regions' endorsements.
var configtxTmpl = template.Must(template.New("configtx").Parse(`# Written by fabricnet.Up.
Organizations:
  - &OrdererOrg
    Name: OrdererOrg
    ID: {{.OrdererMSP}}
    MSPDir: {{.Crypto}}/ordererOrganizations/{{.OrdererDomain}}/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('{{.OrdererMSP}}.member')"}
      Writers: {Type: Signature, Rule: "OR('{{.OrdererMSP}}.member')"}
      Admins: {Type: Signature, Rule: "OR('{{.OrdererMSP}}.admin')"}
    OrdererEndpoints:
      - 127.0.0.1:{{.OrdererPort}}
{{- range .Regions}}
  - &{{.MSPID}}
    Name: {{.MSPID}}
    ID: {{.MSPID}}
    MSPDir: {{$.Crypto}}/peerOrganizations/{{.Domain}}/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('{{.MSPID}}.admin', '{{.MSPID}}.peer', '{{.MSPID}}.client')"}
      Writers: {Type: Signature, Rule: "OR('{{.MSPID}}.admin', '{{.MSPID}}.client')"}
      Admins: {Type: Signature, Rule: "OR('{{.MSPID}}.admin')"}
    # Anchor peers go straight into the genesis block: no channel update later.
    AnchorPeers:
      - Host: 127.0.0.1
        Port: {{.PeerPort}}
{{- end}}
  - &{{.Auditor.MSPID}}
    Name: {{.Auditor.MSPID}}
    ID: {{.Auditor.MSPID}}
    MSPDir: {{.Crypto}}/peerOrganizations/{{.Auditor.Domain}}/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('{{.Auditor.MSPID}}.admin', '{{.Auditor.MSPID}}.client')"}
      # Two of a one-item list: no identity, of any role, meets it.
      Writers: {Type: Signature, Rule: "OutOf(2, '{{.Auditor.MSPID}}.client')"}
      Admins: {Type: Signature, Rule: "OR('{{.Auditor.MSPID}}.admin')"}

Capabilities:
  Channel: &ChannelCapabilities
    V3_0: true
  Orderer: &OrdererCapabilities
    V2_0: true
  Application: &ApplicationCapabilities
    V2_5: true

Application: &ApplicationDefaults
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: Signature, Rule: "{{.RegionsRule "admin"}}"}
    LifecycleEndorsement: {Type: Signature, Rule: "{{.RegionsRule "peer"}}"}
    Endorsement: {Type: Signature, Rule: "{{.RegionsRule "peer"}}"}
  ACLs:
    peer/Propose: /Channel/Application/Readers
  Capabilities:
    <<: *ApplicationCapabilities

Orderer: &OrdererDefaults
  OrdererType: etcdraft
  BatchTimeout: {{.BatchTimeout}}
  BatchSize:
    MaxMessageCount: 500
    AbsoluteMaxBytes: 10 MB
    PreferredMaxBytes: 2 MB
  EtcdRaft:
    Consenters:
      - Host: 127.0.0.1
        Port: {{.OrdererPort}}
        ClientTLSCert: {{.OrdererTLS}}/server.crt
        ServerTLSCert: {{.OrdererTLS}}/server.crt
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    BlockValidation: {Type: ImplicitMeta, Rule: "ANY Writers"}

Channel: &ChannelDefaults
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
  Capabilities:
    <<: *ChannelCapabilities

Profiles:
  ConsortiumChannel:
    <<: *ChannelDefaults
    Orderer:
      <<: *OrdererDefaults
      Organizations:
        - *OrdererOrg
      Capabilities: *OrdererCapabilities
    Application:
      <<: *ApplicationDefaults
      Organizations:
{{- range .Regions}}
        - *{{.MSPID}}
{{- end}}
        - *{{.Auditor.MSPID}}
      Capabilities: *ApplicationCapabilities
`))

// The chaincode-as-a-service builder the peers run (core.yaml's
// chaincode.externalBuilders). The peer never builds or launches the
// contract: "build" keeps connection.json and the peer dials the address in it.
const (
	builderDetect = `#!/bin/sh
# detect SOURCE_DIR METADATA_DIR: claim packages of type ccaas, leave the rest.
grep -q '"type"[[:space:]]*:[[:space:]]*"ccaas"' "$2/metadata.json"
`
	builderBuild = `#!/bin/sh
# build SOURCE_DIR METADATA_DIR OUTPUT_DIR: the package's code.tar.gz holds
# only connection.json (and perhaps CouchDB indexes under META-INF).
set -e
cp "$1/connection.json" "$3/connection.json"
if [ -d "$1/META-INF" ]; then cp -R "$1/META-INF" "$3/"; fi
`
	builderRelease = `#!/bin/sh
# release OUTPUT_DIR RELEASE_DIR: the peer reads chaincode/server/connection.json.
set -e
mkdir -p "$2/chaincode/server"
cp "$1/connection.json" "$2/chaincode/server/connection.json"
if [ -d "$1/META-INF" ]; then mkdir -p "$2/statedb"; cp -R "$1/META-INF/statedb/." "$2/statedb/" 2>/dev/null || true; fi
`
)

func render(t *template.Template, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", t.Name(), err)
	}
	return b.Bytes(), nil
}
