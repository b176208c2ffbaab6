package embedded

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/chaincode"
	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// Serving the embedded ledger to other processes.
//
// One process owns an embedded ledger (Badger allows one process per
// folder, and events are delivered in process). So that several regional
// nodes can run as separate processes on one machine without Fabric, the
// owning process serves it over HTTP (Handler) and the others reach it
// with Dial. Nothing is trusted to the transport: every call is a
// credit.LedgerTx signed by the caller's own ledger key and authenticated
// by the Server exactly as an in-process Client's is, so the hosting
// process cannot act for another region, and a proposal copied off the
// wire is refused when sent again (nonce.go). It is a trial and benchmark
// set-up for one machine — plain HTTP, so readable by anyone on the
// path; a consortium runs Fabric.

// remoteError is the body of a refused or failed call.
type remoteError struct {
	Op   string `json:"op"`
	Kind string `json:"kind"`
	Msg  string `json:"msg"`
}

var errKinds = []error{network.ErrNotFound, network.ErrDenied, network.ErrConflict, network.ErrInvalid, network.ErrUnavailable}

// Handler serves the ledger to remote callers: POST /v1/tx runs a signed
// transaction or read; POST /v1/events streams events (JSON lines) after a
// position until the caller goes away or the ledger closes. Both take a
// credit.LedgerTx signed by a registered identity, authenticated the same
// way: the event stream reveals every transaction's effects (members,
// consent commitments, checkpoints), so it is no more public than the
// reads.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tx", s.serveTx)
	mux.HandleFunc("POST /v1/events", s.serveEvents)
	return http.MaxBytesHandler(mux, MaxRequestBytes)
}

// MaxRequestBytes bounds the body of a call to Handler.
const MaxRequestBytes = 8 << 20

// eventsFunc is the function name of a signed subscription; its
// arguments are the position after which to stream (block, tx id).
const eventsFunc = "Events"

// writeRemoteError answers a refused or failed call of op. op and the
// message may carry the caller's bytes: both are bounded.
func writeRemoteError(w http.ResponseWriter, op string, err error) {
	if _, known := chaincode.LookupFunc(op); !known && op != eventsFunc && op != "tx" {
		op = credit.Quote(op) // the caller's bytes: a short prefix only
	}
	kind, msg := network.ErrInvalid, err.Error()
	var ne *network.Error
	if errors.As(mapErr(op, err), &ne) {
		kind, msg = ne.Kind, ne.Msg
	}
	// Contract errors may name their arguments: bound the echo.
	msg = credit.BoundError(errors.New(msg)).Error()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnprocessableEntity)
	json.NewEncoder(w).Encode(remoteError{Op: op, Kind: kind.Error(), Msg: msg})
}

func (s *Server) serveTx(w http.ResponseWriter, r *http.Request) {
	var tx credit.LedgerTx
	if err := json.NewDecoder(r.Body).Decode(&tx); err != nil {
		writeRemoteError(w, "tx", &network.Error{Op: "tx", Kind: network.ErrInvalid, Msg: "decoding the transaction: " + err.Error()})
		return
	}
	out, err := s.run(tx)
	if err != nil {
		writeRemoteError(w, tx.Function, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// serveEvents streams events to a caller whose signed subscription
// authenticates as a registered identity, with a fresh nonce (a copied
// subscription is refused, as a copied transaction is).
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	var tx credit.LedgerTx
	if err := json.NewDecoder(r.Body).Decode(&tx); err != nil {
		writeRemoteError(w, eventsFunc, &network.Error{Op: eventsFunc, Kind: network.ErrInvalid, Msg: "decoding the subscription: " + err.Error()})
		return
	}
	if tx.Function != eventsFunc || len(tx.Args) != 2 {
		writeRemoteError(w, eventsFunc, &network.Error{Op: eventsFunc, Kind: network.ErrInvalid, Msg: "want a signed " + eventsFunc + " proposal with two arguments (block, tx id)"})
		return
	}
	if err := s.authenticate(tx); err != nil {
		writeRemoteError(w, eventsFunc, err)
		return
	}
	if err := s.update(func(txn *badger.Txn) error { return s.checkNonce(txn, tx, s.now()) }); err != nil {
		writeRemoteError(w, eventsFunc, err)
		return
	}
	block, err := strconv.ParseUint(tx.Args[0], 10, 64)
	if err != nil {
		writeRemoteError(w, eventsFunc, &network.Error{Op: eventsFunc, Kind: network.ErrInvalid, Msg: "block: " + err.Error()})
		return
	}
	ch, err := s.subscribe(r.Context(), network.Position{Block: block, TxID: tx.Args[1]})
	if err != nil {
		writeRemoteError(w, eventsFunc, &network.Error{Op: eventsFunc, Kind: network.ErrUnavailable, Msg: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	enc := json.NewEncoder(w)
	for ev := range ch {
		if enc.Encode(ev) != nil || rc.Flush() != nil {
			return
		}
	}
}

// Remote is a ledger client of an embedded ledger served by another
// process (Handler). It implements network.Ledger.
type Remote struct {
	ledgerOps
	base string
	msp  string
	key  ed25519.PrivateKey
	hc   *http.Client
}

var _ network.Ledger = (*Remote)(nil)

// Dial returns a client of the ledger served at base (http://host:port),
// acting as mspID and signing with key; the identity must be registered
// with the serving Server. It does not connect until the first call.
func Dial(base, mspID string, key ed25519.PrivateKey) (*Remote, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &network.Error{Op: "Dial", Kind: network.ErrInvalid, Msg: fmt.Sprintf("ledger address %q: want http://host:port", base)}
	}
	c := &Remote{base: strings.TrimRight(base, "/"), msp: mspID, key: key,
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	c.ledgerOps = ledgerOps{c}
	return c, nil
}

// Identity is the MSP id the client acts as.
func (c *Remote) Identity() string { return c.msp }

// Close releases idle connections.
func (c *Remote) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// post sends fn with args as a signed proposal to path.
func (c *Remote) post(ctx context.Context, path, fn string, args []string) (*http.Response, error) {
	tx := credit.LedgerTx{Caller: c.msp, Function: fn, Args: args, Nonce: newNonce(time.Now())}
	sig, err := credit.SignLedgerTx(c.key, tx)
	if err != nil {
		return nil, &network.Error{Op: fn, Kind: network.ErrInvalid, Msg: err.Error()}
	}
	tx.Sig = sig
	body, err := json.Marshal(tx)
	if err != nil {
		return nil, &network.Error{Op: fn, Kind: network.ErrInvalid, Msg: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, &network.Error{Op: fn, Kind: network.ErrInvalid, Msg: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, &network.Error{Op: fn, Kind: network.ErrUnavailable, Msg: err.Error()}
	}
	return resp, nil
}

// remoteErr turns a refused call's response into a *network.Error.
func remoteErr(fn string, status int, b []byte) error {
	var re remoteError
	if json.Unmarshal(b, &re) != nil || re.Kind == "" {
		return &network.Error{Op: fn, Kind: network.ErrUnavailable, Msg: fmt.Sprintf("HTTP %d: %s", status, bytes.TrimSpace(b))}
	}
	kind := network.ErrUnavailable
	for _, k := range errKinds {
		if k.Error() == re.Kind {
			kind = k
		}
	}
	return &network.Error{Op: fn, Kind: kind, Msg: re.Msg}
}

func (c *Remote) call(ctx context.Context, fn string, out any, args ...string) error {
	resp, err := c.post(ctx, "/v1/tx", fn, args)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &network.Error{Op: fn, Kind: network.ErrUnavailable, Msg: err.Error()}
	}
	if resp.StatusCode != http.StatusOK {
		return remoteErr(fn, resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return &network.Error{Op: fn, Kind: network.ErrUnavailable, Msg: "decoding the result: " + err.Error()}
	}
	return nil
}

// Subscribe implements network.Events: one streaming request, signed as
// a transaction is; the channel closes when ctx ends or the stream
// breaks, and the caller resubscribes from the last position it
// processed.
func (c *Remote) Subscribe(ctx context.Context, from network.Position) (<-chan network.Event, error) {
	resp, err := c.post(ctx, "/v1/events", eventsFunc, []string{strconv.FormatUint(from.Block, 10), from.TxID})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, remoteErr("Subscribe", resp.StatusCode, b)
	}
	ch := make(chan network.Event, 64)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 8<<20)
		for sc.Scan() {
			var ev network.Event
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				return
			}
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}
