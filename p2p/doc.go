// Package p2p is the transport between regional nodes: the libp2p host
// (its identity, transports, resource limits), the consortium connection
// gater and private-network key (Membership, fed by the node from the
// ledger), and the report protocol's frames. It makes no credit
// decision: no consent check, bank lookup, nonce store, receipt signing
// or verifying, and no records store. The node hands the answering side a
// Handler and checks every answer the requesting side returns.
//
// # Protocols (README: "Between regional nodes")
//
// /ccnode/<network-id>/report/3.0.0: one stream per exchange. The
// requester writes one Request frame (EncodeRequest); the answerer writes
// a Response frame (a refusal, then closes; or the signed receipt over the
// whole slice and its leaf index) and, after a receipt, Chunk frames of at
// most ServerConfig.ChunkBytes, the last marked last. The requester then
// writes its Ack frame of that receipt and closes its side, and the
// answerer writes an AckResponse and closes; a requester that does not
// acknowledge closes its side instead, and the answerer closes. Ask
// returns once the ack is sent; the AckResponse is read after it
// (Reply.AckOutcome), and Server.Settle waits for the exchanges in
// progress, as an export of the answerer's log does.
//
// /ccnode/<network-id>/report/4.0.0 (ReportsProtocol): the same frames,
// exchanges one after another on a stream. After an AckResponse that
// stored the ack, the requester keeps the stream for its next exchange
// with the region (ClientConfig.IdleTimeout) instead of closing its side,
// and the answerer waits for the next Request frame
// (ServerConfig.IdleTimeout); anything else ends the stream as on 3.0.0.
// A requester offers 4.0.0 first and speaks 3.0.0 to a region that does
// not serve it; a kept stream the region closed meanwhile costs one more
// try on a new stream. Each exchange is counted in flight on its own
// (Membership.hold), idle streams not at all.
//
// Refusals carry a credit.Code and a message, passed through exactly.
// Frames are a uvarint length and a protobuf message of wire.proto; the
// Go code in p2p/pb is generated (go generate ./p2p/).
//
// # Use
//
//	members := p2p.NewMembership(log, overrides)   // the gater
//	h, _ := p2p.NewHost(p2p.HostConfig{Key: key, Listen: listen, Members: members})
//	members.SetMembers(ledgerRegions)              // and on every member event
//	srv, _ := p2p.NewServer(p2p.ServerConfig{NetworkID: id, Handler: node, Members: members})
//	srv.Register(h)
//	c, _ := p2p.NewClient(p2p.ClientConfig{Host: h, NetworkID: id, Members: members})
//	req := p2p.EncodeRequest(home, queryJSON)      // once per query
//	reply, err := c.Ask(ctx, region, req, acker)   // per region; acker verifies reply, signs the ack
//	conn := p2p.NewConnector(h, members, 0, 0, log) // redial with backoff
package p2p
