package fabric

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/prdcredit/ccnode/chaincode"
)

// simPeer is a Fabric Gateway service that runs the project's real
// contract (package chaincode) the way a peer does: endorsement simulates
// the transaction on committed state and records what it read; commit
// applies the write set in a new block unless a read is stale
// (MVCC_READ_CONFLICT); the caller is the MSP id in the proposal's
// creator; the transaction time is the proposal's timestamp; each block's
// chaincode event is served to ChaincodeEvents subscribers with Fabric's
// resume semantics. It stands in for a Fabric network so the conformance
// suite can drive this package's client end to end over gRPC and TLS. It
// does not check signatures, policies or certificates: that is Fabric's
// part, exercised only by the live tests.
type simPeer struct {
	gateway.UnimplementedGatewayServer

	mu      sync.Mutex
	state   map[string]versioned
	history map[string][]chaincode.HistoryEntry
	pending map[string]*simTx
	results map[string]txResult
	events  []fakeEvent
	block   uint64
	changed chan struct{} // closed and replaced on every commit
}

type versioned struct {
	value   []byte
	version uint64 // block that wrote it
}

type txResult struct {
	code  peer.TxValidationCode
	block uint64
}

func newSimPeer() *simPeer {
	return &simPeer{
		state:   map[string]versioned{},
		history: map[string][]chaincode.HistoryEntry{},
		pending: map[string]*simTx{},
		results: map[string]txResult{},
		changed: make(chan struct{}),
	}
}

// simTx is one simulated transaction: a chaincode.TxContext over the
// committed state, buffering its writes and event.
type simTx struct {
	p      *simPeer
	mspID  string
	txID   string
	time   time.Time
	reads  map[string]uint64 // key -> version seen (0: absent)
	writes map[string][]byte
	order  []string
	event  *fakeEvent
}

func (tx *simTx) MSPID() (string, error)     { return tx.mspID, nil }
func (tx *simTx) TxID() string               { return tx.txID }
func (tx *simTx) TxTime() (time.Time, error) { return tx.time, nil }

// The reads below run with p.mu held by the caller (endorse/evaluate).
func (tx *simTx) GetState(key string) ([]byte, error) {
	if v, ok := tx.writes[key]; ok {
		return v, nil
	}
	v := tx.p.state[key]
	tx.reads[key] = v.version
	return v.value, nil
}

func (tx *simTx) PutState(key string, value []byte) error {
	if _, ok := tx.writes[key]; !ok {
		tx.order = append(tx.order, key)
	}
	tx.writes[key] = append([]byte(nil), value...)
	return nil
}

func (tx *simTx) GetStateRange(start, end string) ([]chaincode.KV, error) {
	var out []chaincode.KV
	for k, v := range tx.p.state {
		if k >= start && k < end {
			tx.reads[k] = v.version
			out = append(out, chaincode.KV{Key: k, Value: v.value})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (tx *simTx) History(key string) ([]chaincode.HistoryEntry, error) {
	return append([]chaincode.HistoryEntry(nil), tx.p.history[key]...), nil
}

func (tx *simTx) SetEvent(name string, payload []byte) error {
	tx.event = &fakeEvent{txID: tx.txID, name: name, payload: append([]byte(nil), payload...)}
	return nil
}

// invoke dispatches by name through the contract's table, with
// contractapi's refusals of an unknown function or a wrong argument count.
func invoke(ctx chaincode.TxContext, fn string, args []string) ([]byte, error) {
	f, known := chaincode.LookupFunc(fn)
	if !known {
		return nil, fmt.Errorf("function %q not found", fn)
	}
	if len(args) != f.Args {
		return nil, fmt.Errorf("%s takes %d arguments, got %d", fn, f.Args, len(args))
	}
	v, err := f.Run(ctx, args)
	if err != nil || v == nil {
		return nil, err
	}
	return json.Marshal(v)
}

func (p *simPeer) simulate(sp *peer.SignedProposal) (*simTx, string, string, []byte, error) {
	in, err := invocation(sp)
	if err != nil {
		return nil, "", "", nil, status.Error(codes.InvalidArgument, err.Error())
	}
	tx := &simTx{p: p, mspID: in.mspID, txID: in.txID, time: in.time, reads: map[string]uint64{}, writes: map[string][]byte{}}
	p.mu.Lock()
	res, err := invoke(tx, in.fn, in.args)
	p.mu.Unlock()
	if err != nil {
		// The gateway's report of a chaincode error on its first
		// endorser, a peer of the caller's own organisation.
		return nil, "", "", nil, refusalBy(in.mspID, err.Error())
	}
	return tx, in.txID, in.channel, res, nil
}

func (p *simPeer) Endorse(_ context.Context, req *gateway.EndorseRequest) (*gateway.EndorseResponse, error) {
	tx, txID, channel, res, err := p.simulate(req.GetProposedTransaction())
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.pending[txID] = tx
	p.mu.Unlock()
	return &gateway.EndorseResponse{PreparedTransaction: envelope(txID, channel, res)}, nil
}

func (p *simPeer) Evaluate(_ context.Context, req *gateway.EvaluateRequest) (*gateway.EvaluateResponse, error) {
	_, _, _, res, err := p.simulate(req.GetProposedTransaction())
	if err != nil {
		return nil, err
	}
	return &gateway.EvaluateResponse{Result: &peer.Response{Status: 200, Payload: res}}, nil
}

// Submit orders and commits at once: one transaction per block.
func (p *simPeer) Submit(_ context.Context, req *gateway.SubmitRequest) (*gateway.SubmitResponse, error) {
	txID := req.GetTransactionId()
	p.mu.Lock()
	defer p.mu.Unlock()
	tx, ok := p.pending[txID]
	if !ok {
		if _, done := p.results[txID]; done {
			return &gateway.SubmitResponse{}, nil // a resend: DUPLICATE_TXID, first result stands
		}
		return nil, status.Errorf(codes.FailedPrecondition, "transaction %s was not endorsed", txID)
	}
	delete(p.pending, txID)
	p.block++
	code := peer.TxValidationCode_VALID
	for k, v := range tx.reads {
		if p.state[k].version != v {
			code = peer.TxValidationCode_MVCC_READ_CONFLICT
			break
		}
	}
	if code == peer.TxValidationCode_VALID {
		for _, k := range tx.order {
			p.state[k] = versioned{value: tx.writes[k], version: p.block}
			p.history[k] = append(p.history[k], chaincode.HistoryEntry{TxID: txID, Time: tx.time, Value: tx.writes[k]})
		}
		if tx.event != nil {
			ev := *tx.event
			ev.block = p.block
			p.events = append(p.events, ev)
		}
	}
	p.results[txID] = txResult{code: code, block: p.block}
	close(p.changed)
	p.changed = make(chan struct{})
	return &gateway.SubmitResponse{}, nil
}

func (p *simPeer) CommitStatus(ctx context.Context, req *gateway.SignedCommitStatusRequest) (*gateway.CommitStatusResponse, error) {
	return awaitCommit(ctx, req, func(txID string) (*gateway.CommitStatusResponse, <-chan struct{}) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if res, ok := p.results[txID]; ok {
			return &gateway.CommitStatusResponse{Result: res.code, BlockNumber: res.block}, nil
		}
		return nil, p.changed
	})
}

// ChaincodeEvents replays committed events from the start position,
// skipping through AfterTransactionId in the start block, then streams
// new ones as they commit.
func (p *simPeer) ChaincodeEvents(req *gateway.SignedChaincodeEventsRequest, stream grpc.ServerStreamingServer[gateway.ChaincodeEventsResponse]) error {
	var r gateway.ChaincodeEventsRequest
	if err := proto.Unmarshal(req.GetRequest(), &r); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	p.mu.Lock()
	next := p.block + 1 // the gateway's default: next commit
	p.mu.Unlock()
	if s := r.GetStartPosition().GetSpecified(); s != nil {
		next = s.GetNumber()
	}
	after := r.GetAfterTransactionId()
	startBlock := next
	i := 0
	for {
		p.mu.Lock()
		evs := p.events[i:]
		i = len(p.events)
		changed := p.changed
		p.mu.Unlock()
		for _, e := range evs {
			if e.block < next {
				continue
			}
			if after != "" && e.block == startBlock {
				if e.txID == after {
					after = ""
				}
				continue
			}
			err := stream.Send(&gateway.ChaincodeEventsResponse{BlockNumber: e.block, Events: []*peer.ChaincodeEvent{{
				ChaincodeId: r.GetChaincodeId(), TxId: e.txID, EventName: e.name, Payload: e.payload,
			}}})
			if err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}
