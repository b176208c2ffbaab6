package node

import (
	"bytes"
	"fmt"
	"text/template"
)

var sampleTmpl = template.Must(template.New("cfg").Parse(`# ccnode configuration for region {{.Region}}.
# Every key is optional except region; omitted keys take the defaults shown.
# Flags of 'ccnode run' override this file; 'ccnode config show' prints the
# effective configuration.

# This node's region id: the six-digit division code of its city.
region: "{{.Region}}"

# Folder of the region's Badger store (records, receipt log, anchoring
# outbox) and, by default, of the embedded ledger.
data_dir: {{.DataDir}}

# ed25519 key (PKCS#8 PEM, mode 0600): the node's libp2p identity and the key
# that signs receipts, acknowledgements, checkpoints and consent
# countersignatures. 'ccnode init' creates it.
key_file: {{.KeyFile}}

p2p:
  # libp2p listen addresses. With a private-network key only TCP works.
  listen:{{range .P2P.Listen}}
    - {{.}}{{end}}
  # Part of every protocol id, so that two consortia never talk.
  network_id: {{.P2P.NetworkID}}
  # Private-network key shared by the consortium; empty disables it.
  psk_file: "{{.P2P.PSKFile}}"
  # Addresses other regions dial (multiaddrs with a concrete port, such as
  # /dns4/ccnode.gz.example/tcp/4401). When set, only these are published on
  # the ledger and offered to peers; when empty, the listeners' addresses
  # are (on 0.0.0.0 that is every local interface's).
  announce:{{range .P2P.Announce}}
    - {{.}}{{end}}

http:
  # Address of the bank API (HTTP/JSON; see /openapi.yaml). It serves
  # banks only: operator calls are on the admin API (admin.addr).
  addr: {{.HTTP.Addr}}
  # Largest request body accepted (bytes); larger is refused with 413.
  max_body_bytes: {{.HTTP.MaxBodyBytes}}
  # Time to read a request, and to write its answer.
  read_timeout: {{.HTTP.ReadTimeout}}
  write_timeout: {{.HTTP.WriteTimeout}}
  # Open connections at most (also on ledger.serve_addr). Past it new
  # connections wait in the kernel's queue and idle ones are closed.
  max_connections: {{.HTTP.MaxConnections}}
  # Bytes of request bodies over 64 KiB read and handled at once, at least
  # max_body_bytes. A request that finds no room within half of read_timeout
  # is refused with 503 (code unavailable); a bank query, a few KiB, never
  # waits on it.
  max_inflight_bytes: {{.HTTP.MaxInflightBytes}}
  # Serve the bank API over TLS with this certificate (PEM, its chain
  # after it) and key (mode 0600): both or neither. 'ccnode init --tls'
  # makes a self-signed pair for trials. Empty: plain HTTP.
  tls_cert_file: "{{.HTTP.TLSCertFile}}"
  tls_key_file: "{{.HTTP.TLSKeyFile}}"
  # With TLS: every client must present a certificate issued by one of
  # these CAs (PEM), on top of the signature on each bank query, which
  # still names the bank. Empty: no client certificate is asked for.
  client_ca_file: "{{.HTTP.ClientCAFile}}"

admin:
  # Address of the admin API: recording and revoking consents, registering
  # banks, reading any receipt. Keep it on loopback (the default) or
  # behind a firewall; it is a listener apart from the bank API's.
  addr: {{.Admin.Addr}}
  # The operators: one line per operator, its name and the SHA-256 of its
  # token (never the token). Each admin call carries one operator's token
  # and is logged with its name. 'ccnode operator add NAME' adds one and
  # prints its token once; 'ccnode operator revoke NAME' revokes it, from
  # the next call on, without a restart ('ccnode init' made "admin").
  operators_file: {{.Admin.OperatorsFile}}

ledger:
  # Exactly one of embedded_dir (the embedded ledger, one machine),
  # embedded_url (the embedded ledger another node on this machine serves)
  # and fabric_gateway (a Fabric gateway connection file) must be set.
  embedded_dir: "{{.Ledger.EmbeddedDir}}"
  embedded_url: "{{.Ledger.EmbeddedURL}}"
  fabric_gateway: "{{.Ledger.FabricGateway}}"
  # With embedded_dir: serve the embedded ledger to the other regions'
  # nodes on this address (plain HTTP on one machine; every call is signed
  # by the caller's own key). Empty serves nothing.
  serve_addr: "{{.Ledger.ServeAddr}}"
  # With embedded_dir: a JSON file of the first members
  # ({"regions": [...], "banks": [...]}, composed from the regions' member
  # descriptors by 'ccnode consortium bootstrap') a new ledger starts with;
  # empty starts it with this region alone, and the node warns that
  # queries then answer from this region's records only.
  bootstrap_file: "{{.Ledger.BootstrapFile}}"
  # The ledger identity (MSP id) this node acts as.
  msp_id: {{.Ledger.MSPID}}
  # If the node's view of the ledger is older than this, it refuses to
  # answer (fail closed) and /readyz says why.
  grace_period: {{.Ledger.GracePeriod}}

anchor:
  # checkpoint: anchor signed checkpoints of the receipt log (below), one
  # ledger transaction per node per interval whatever the query rate.
  # per_receipt: one ledger transaction per receipt, committed before the
  # answer leaves (the design a consortium would otherwise pick: receipts
  # capped by the ledger's transaction rate and a commit added to every
  # query; kept for side-by-side benchmarks). off: never anchor (benchmarks
  # only; an audit reports every receipt as unanchored).
  mode: {{.Anchor.Mode}}
  # Anchor a checkpoint of the receipt log this often, or as soon as this
  # many receipts wait, whichever comes first. One Fabric transaction costs
  # ~260 ms and a peer commits 180-390 tx/s, so 5 s per node keeps the
  # ledger's load independent of the query rate.
  interval: {{.Anchor.Interval}}
  max_leaves: {{.Anchor.MaxLeaves}}
  # Backoff between attempts while the ledger is unavailable.
  retry_min: {{.Anchor.RetryMin}}
  retry_max: {{.Anchor.RetryMax}}

query:
  # A bank's query time must be within this of the node's clock; a
  # query's nonce is remembered until the query's time plus this.
  window: {{.Query.Window}}
  # How long to wait for each region's answer.
  region_timeout: {{.Query.RegionTimeout}}

store:
  # Free-space floor (bytes) of the data folder's filesystem: an import that
  # would leave less is refused before it writes; a node below it refuses
  # imports and keeps answering until its receipt log could no longer log
  # durably, then refuses queries (disk_full). /readyz and
  # ccnode_store_disk_state say which.
  min_free_bytes: {{.Store.MinFreeBytesOrDefault}}
`))

// SampleConfig renders cfg as a YAML file with every key commented.
func SampleConfig(cfg Config) []byte {
	var b bytes.Buffer
	if err := sampleTmpl.Execute(&b, cfg); err != nil {
		panic(fmt.Sprintf("sample config template: %v", err)) // the template is a constant
	}
	return b.Bytes()
}
