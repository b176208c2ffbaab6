package fabricnet

import (
	"bytes"
	"fmt"
	"text/template"
)

// cryptoConfigTmpl is cryptogen's input: one orderer organisation and one
// peer organisation per region. Every certificate names localhost and
// 127.0.0.1 so TLS verifies without host name overrides. A region's
// "ccserver" node is only there for its TLS pair: the chaincode server's
// certificate, issued by the region's own TLS CA.
var cryptoConfigTmpl = template.Must(template.New("crypto").Parse(`# Written by fabricnet.Up: one orderer organisation, one peer organisation per region.
OrdererOrgs:
  - Name: Orderer
    Domain: {{.OrdererDomain}}
    EnableNodeOUs: true
    Specs:
      - Hostname: orderer
        SANS: [localhost, 127.0.0.1]
PeerOrgs:
{{- range .Regions}}
  - Name: {{.MSPID}}
    Domain: {{.Domain}}
    EnableNodeOUs: true
    Specs:
      - Hostname: peer0
        SANS: [localhost, 127.0.0.1]
      - Hostname: ccserver
        SANS: [localhost, 127.0.0.1]
    Users:
      Count: 1
{{- end}}
`))

// configtxTmpl makes the application channel's genesis block (there is no
// system channel). A majority of regions must endorse every transaction of
// every chaincode (the channel-wide Endorsement policy, which the contract's
// definition inherits) and approve every chaincode definition.
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
      Endorsement: {Type: Signature, Rule: "OR('{{.MSPID}}.peer')"}
    # Anchor peers go straight into the genesis block: no channel update later.
    AnchorPeers:
      - Host: 127.0.0.1
        Port: {{.PeerPort}}
{{- end}}

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
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    LifecycleEndorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
    Endorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
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
