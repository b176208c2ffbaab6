// Package p2p owns the libp2p side of a regional node: the host (its
// identity, transports, resource limits), the consortium connection gater
// and private-network key, and the request/response protocols between
// regional nodes. It must not reach into Badger or the ledger: the node
// hands it interfaces (Members, ConsentChecker, ReportSource, ReceiptLog,
// AckStore, NonceStore) and feeds it member records (Membership.SetMembers).
//
// # Protocols (README)
//
// Regional nodes talk to each other directly over libp2p (TCP with TLS 1.3
// preferred or Noise, or QUIC), never through the ledger. A node's libp2p identity is its
// ed25519 receipt-signing key, and its peer id is registered in its
// region's member record on the ledger; every node's connection gater
// admits exactly the peers of active member regions and drops a region the
// moment the ledger retires it (an optional private-network key, TCP only,
// keeps strangers out of the handshake as well). A home node asks for a
// subject's report on /ccnode/<network-id>/report/1.0.0: one stream per
// exchange, one request frame (the bank's signed query with its consent
// document, and the requesting region) and one response frame (the
// answering region's slice of the report and a receipt it signed binding
// the query, both regions, the slice's SHA-256 digest, the record count
// and the time — logged durably before it is sent — or a refusal with a
// code from a closed set: not_member, bad_request, too_large, stale,
// replayed, bad_signature, bank_unknown, bank_retired, no_consent,
// consent_revoked, consent_expired, consent_out_of_scope,
// consent_wrong_grantee, consent_mismatch, unavailable, internal). Frames
// are a uvarint length and a protobuf message (wire.proto), at most 64 KiB
// for a request and 8 MiB for an answer. The answering node checks, in
// order: the request decodes; the requesting peer is the active region it
// claims; the query's time is within the window; the bank is active and
// signed the query; the nonce is new; the consent holds on the ledger
// (commitment, status, window, grantee, scope). The home node asks the
// subject's registration region (from the USCC's division code and the
// member records' divisions) and every other active region in parallel,
// each with a timeout, and gets per region: answered, no_data, refused
// (code), unreachable or bad_answer. It uses a slice only after checking
// the receipt's signature against the answering region's ledger key and
// recomputing the digest and count, then returns its own signed
// acknowledgement on /ccnode/<network-id>/ack/1.0.0, which the answering
// node verifies and stores beside the receipt. The home node's own region
// answers through the same checks in-process (a libp2p host cannot open a
// stream to itself).
//
// # Use
//
//	members := p2p.NewMembership(log, overrides)   // the gater
//	h, _ := p2p.NewHost(p2p.HostConfig{Key: key, Listen: listen, Members: members})
//	members.SetMembers(ledgerRegions)              // and on every member event
//	srv, _ := p2p.NewServer(p2p.ServerConfig{...}) // answering side
//	srv.Register(h)
//	rt, _ := p2p.NewRouter(p2p.RouterConfig{Host: h, Local: srv, ...})
//	res := rt.Query(ctx, q)                        // per-region results
//	rt.Ack(ctx, res.Regions[i].Receipt)            // after keeping it
//	conn := p2p.NewConnector(h, members, 0, 0, log) // redial with backoff
package p2p
