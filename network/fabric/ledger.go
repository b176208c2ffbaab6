// Package fabric is the network.Ledger backend over a real Hyperledger
// Fabric network, through the Fabric Gateway client
// (github.com/hyperledger/fabric-gateway). It owns the client side only:
// one gRPC connection to the region's gateway peer, the region's X.509
// identity and signer, per-step timeouts, submits that are confirmed by
// transaction id and safe to retry, and the chaincode-event subscription.
//
// It must not decide anything about credit data or ledger rules: the
// contract (package chaincode) decides, this package carries its answers
// and maps its refusals to network's typed errors. It must not start or
// stop Fabric processes (package fabricnet does that for tests and trials).
package fabric

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-gateway/pkg/hash"
	"github.com/hyperledger/fabric-gateway/pkg/identity"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/prdcredit/ccnode/network"
)

// Ledger is a network.Ledger acting as one region's client identity on a
// Fabric channel. It is safe for concurrent use; Close is safe twice.
type Ledger struct {
	cfg     Config
	log     *slog.Logger
	eps     *endpoints
	creator []byte // serialized identity, for commit-status requests by tx id

	// done ends subscriptions when the Ledger closes.
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var _ network.Ledger = (*Ledger)(nil)

// Dial reads the identity and TLS files named in cfg and prepares one
// shared gRPC connection to the gateway peer. It does not wait for the
// peer: the connection is made by the first call, and a peer that cannot
// be reached makes that call fail with network.ErrUnavailable, so a node
// may start before its peer does. ctx is not retained.
func Dial(ctx context.Context, cfg Config, logger *slog.Logger) (*Ledger, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	caPEM, err := os.ReadFile(cfg.TLSCACertPath)
	if err != nil {
		return nil, &ConfigError{Field: "tls_ca_cert", Err: err}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, &ConfigError{Field: "tls_ca_cert", Err: errors.New("no PEM certificate in file")}
	}
	certPEM, err := os.ReadFile(cfg.CertPath)
	if err != nil {
		return nil, &ConfigError{Field: "cert_path", Err: err}
	}
	cert, err := identity.CertificateFromPEM(certPEM)
	if err != nil {
		return nil, &ConfigError{Field: "cert_path", Err: err}
	}
	id, err := identity.NewX509Identity(cfg.MSPID, cert)
	if err != nil {
		return nil, &ConfigError{Field: "cert_path", Err: err}
	}
	keyPEM, err := os.ReadFile(cfg.KeyPath)
	if err != nil {
		return nil, &ConfigError{Field: "key_path", Err: err}
	}
	key, err := identity.PrivateKeyFromPEM(keyPEM)
	if err != nil {
		return nil, &ConfigError{Field: "key_path", Err: err}
	}
	// A key that is not the certificate's would make every call fail at
	// the gateway's signature check, reported as an unreachable ledger.
	if !keyMatches(key, cert.PublicKey) {
		return nil, &ConfigError{Field: "key_path", Err: errors.New("private key does not match the certificate in cert_path")}
	}
	sign, err := identity.NewPrivateKeySign(key)
	if err != nil {
		return nil, &ConfigError{Field: "key_path", Err: err}
	}
	creator, err := proto.Marshal(&msp.SerializedIdentity{Mspid: id.MspID(), IdBytes: id.Credentials()})
	if err != nil {
		return nil, fmt.Errorf("fabric: serialize identity: %w", err)
	}

	tlsCfg := &tls.Config{RootCAs: pool, ServerName: cfg.ServerNameOverride, MinVersion: tls.VersionTLS12}
	if cfg.TLSClientCertPath != "" {
		// Peers with CORE_PEER_TLS_CLIENTAUTHREQUIRED refuse a handshake
		// without a client certificate their channel's TLS CAs signed.
		pair, err := tls.LoadX509KeyPair(cfg.TLSClientCertPath, cfg.TLSClientKeyPath)
		if err != nil {
			return nil, &ConfigError{Field: "tls_client_cert", Err: err}
		}
		tlsCfg.Certificates = []tls.Certificate{pair}
	}
	creds := credentials.NewTLS(tlsCfg)

	var list []*endpoint
	closeAll := func() {
		for _, ep := range list {
			ep.gw.Close()
			ep.conn.Close()
		}
	}
	for _, addr := range cfg.AllEndpoints() {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			closeAll()
			return nil, &ConfigError{Field: "endpoint", Err: fmt.Errorf("%s: %w", addr, err)}
		}
		gw, err := client.Connect(id,
			client.WithSign(sign),
			client.WithHash(hash.SHA256),
			client.WithClientConnection(conn),
			client.WithEvaluateTimeout(cfg.EvaluateTimeout),
			client.WithEndorseTimeout(cfg.EndorseTimeout),
			client.WithSubmitTimeout(cfg.SubmitTimeout),
			client.WithCommitStatusTimeout(cfg.CommitStatusTimeout),
		)
		if err != nil {
			conn.Close()
			closeAll()
			return nil, fmt.Errorf("fabric: connect gateway %s: %w", addr, err)
		}
		nw := gw.GetNetwork(cfg.Channel)
		list = append(list, &endpoint{addr: addr, conn: conn, gw: gw, network: nw, contract: nw.GetContract(cfg.Chaincode)})
	}
	l := &Ledger{
		cfg:     cfg,
		log:     logger.With("ledger", "fabric", "msp", cfg.MSPID),
		eps:     newEndpoints(list, cfg.EndpointCooldown),
		creator: creator,
		done:    make(chan struct{}),
	}
	l.log.Info("fabric gateway endpoints", "endpoints", cfg.AllEndpoints(), "client_tls", cfg.TLSClientCertPath != "")
	return l, nil
}

// use picks the endpoint for the next call and logs a change.
func (l *Ledger) use() (*endpoint, int) {
	ep, idx, switched := l.eps.pick()
	if switched {
		l.log.Warn("fabric gateway endpoint changed", "endpoint", ep.addr)
	}
	return ep, idx
}

// outcome records how endpoint idx did in a call that ended with err, and
// reports whether another endpoint is available to try at once.
func (l *Ledger) outcome(ep *endpoint, idx int, err error) (failover bool) {
	if !endpointDown(err) {
		if err == nil {
			l.eps.succeeded(idx)
		}
		return false
	}
	if l.eps.failed(idx) {
		l.log.Warn("fabric gateway endpoint unavailable", "endpoint", ep.addr, "err", err)
	} else {
		l.log.Debug("fabric gateway endpoint still unavailable", "endpoint", ep.addr, "err", err)
	}
	return l.eps.available() > 0
}

// keyMatches reports whether key is the private half of pub.
func keyMatches(key crypto.PrivateKey, pub crypto.PublicKey) bool {
	k, ok := key.(interface{ Public() crypto.PublicKey })
	if !ok {
		return false
	}
	p, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && p.Equal(pub)
}

// Identity is the MSP id this client acts as.
func (l *Ledger) Identity() string { return l.cfg.MSPID }

// Close ends subscriptions and closes the gateway connection. Calls in
// flight fail with network.ErrUnavailable.
func (l *Ledger) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		var errs []error
		for _, ep := range l.eps.list {
			// Gateway.Close does not close a connection it was given.
			ep.gw.Close()
			if err := ep.conn.Close(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ep.addr, err))
			}
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// errClosed is the cause of calls on a closed Ledger.
var errClosed = errors.New("fabric ledger closed")

func (l *Ledger) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// evaluate runs a read-only transaction on the gateway peer. Unreachable
// or slow peers are retried until MaxAttempts or ctx ends.
func (l *Ledger) evaluate(ctx context.Context, fn string, args ...string) ([]byte, error) {
	var lastErr error
	failover := false
	for attempt := 0; attempt < l.cfg.MaxAttempts; attempt++ {
		if attempt > 0 && !failover {
			if err := l.backoff(ctx, attempt); err != nil {
				break
			}
		}
		if l.closed() {
			return nil, &network.Error{Op: fn, Kind: network.ErrUnavailable, Msg: errClosed.Error()}
		}
		ep, idx := l.use()
		sctx, cancel := context.WithTimeout(ctx, l.cfg.EvaluateTimeout)
		res, err := ep.contract.EvaluateWithContext(sctx, fn, client.WithArguments(args...))
		cancel()
		failover = l.outcome(ep, idx, err)
		if err == nil {
			return res, nil
		}
		lastErr = err
		if !retryable(err) || ctx.Err() != nil {
			break
		}
		l.log.Debug("evaluate retry", "fn", fn, "attempt", attempt+1, "err", err)
	}
	return nil, mapError(fn, lastErr)
}

// submit runs a transaction through endorse, submit and commit status,
// and returns the contract's result once the transaction committed VALID.
//
// The transaction id is kept from endorsement on. After an ambiguous
// submit (the orderer may or may not have it) the commit status is asked
// by that id before anything is sent again; only a transaction that
// certainly did not commit is endorsed afresh (a read conflict, or an
// endorse step that never reached the peers). Resending the same signed
// transaction cannot commit it twice (Fabric rejects a duplicate tx id),
// and a fresh endorsement after an unknown outcome is safe because the
// contract's writes are idempotent.
func (l *Ledger) submit(ctx context.Context, fn string, args ...string) ([]byte, error) {
	var lastErr error
	base := backoffBase
	failover := false
	for attempt := 0; attempt < l.cfg.MaxAttempts; attempt++ {
		if attempt > 0 && !failover {
			if err := l.backoffFrom(ctx, base, attempt); err != nil {
				break
			}
		}
		if l.closed() {
			return nil, &network.Error{Op: fn, Kind: network.ErrUnavailable, Msg: errClosed.Error()}
		}
		res, again, err := l.submitOnce(ctx, fn, args)
		if err == nil {
			return res, nil
		}
		lastErr = err
		failover = again && endpointDown(err) && l.eps.available() > 0
		if !again || ctx.Err() != nil {
			break
		}
		base = backoffBase
		if refusedOnlyRemotely(err, l.cfg.MSPID) {
			base = backoffLagged
		}
		l.log.Debug("submit retry", "fn", fn, "attempt", attempt+1, "err", err)
	}
	return nil, mapError(fn, lastErr)
}

// submitOnce is one endorsement and what follows it. again reports whether
// a fresh endorsement may succeed.
func (l *Ledger) submitOnce(ctx context.Context, fn string, args []string) (res []byte, again bool, err error) {
	ep, idx := l.use()
	proposal, err := ep.contract.NewProposal(fn, client.WithArguments(args...))
	if err != nil {
		return nil, false, fmt.Errorf("fabric: proposal %s: %w", fn, err)
	}
	ectx, cancel := context.WithTimeout(ctx, l.cfg.EndorseTimeout)
	txn, err := proposal.EndorseWithContext(ectx)
	cancel()
	l.outcome(ep, idx, err)
	if err != nil {
		if refusedOnlyRemotely(err, l.cfg.MSPID) {
			l.log.Debug("endorsement refused only by other organisations' peers; endorsing again", "fn", fn, "err", err)
			return nil, true, err
		}
		return nil, retryable(err), err
	}
	txID := txn.TransactionID()
	status, err := l.submitAndWait(ctx, ep, idx, txn)
	if err != nil {
		// Neither the orderer nor the peer confirmed either way; the
		// caller sees ErrUnavailable and may call again (idempotent).
		return nil, false, err
	}
	if status.Successful {
		return txn.Result(), false, nil
	}
	cerr := &client.CommitError{TransactionID: txID, Code: status.Code}
	switch status.Code {
	case peer.TxValidationCode_MVCC_READ_CONFLICT, peer.TxValidationCode_PHANTOM_READ_CONFLICT:
		// Another transaction changed what this one read: endorse again
		// on the new state.
		return nil, true, fmt.Errorf("transaction %s: %s: %w", txID, status.Code, cerr)
	}
	return nil, false, fmt.Errorf("transaction %s: %s: %w", txID, status.Code, cerr)
}

// submitAndWait sends an endorsed transaction to the orderer through the
// gateway ep that endorsed it, and waits for its commit status, confirming
// by transaction id after any failure. When ep becomes unavailable, the
// same signed transaction is sent and its status asked through the next
// endpoint: a duplicate transaction id cannot commit twice.
func (l *Ledger) submitAndWait(ctx context.Context, ep *endpoint, idx int, txn *client.Transaction) (*client.Status, error) {
	txID := txn.TransactionID()
	var byID *client.Commit // built only when a submit call fails
	var lastErr error
	failover := false
	for attempt := 0; attempt < l.cfg.MaxAttempts; attempt++ {
		if attempt > 0 && !failover {
			if err := l.backoff(ctx, attempt); err != nil {
				break
			}
		}
		if failover {
			next, nidx := l.use()
			moved, err := l.moveTransaction(txn, next)
			if err != nil {
				return nil, err
			}
			ep, idx, txn, byID = next, nidx, moved, nil
		}
		sctx, cancel := context.WithTimeout(ctx, l.cfg.SubmitTimeout)
		commit, serr := txn.SubmitWithContext(sctx)
		cancel()
		failover = l.outcome(ep, idx, serr)
		if serr != nil {
			if failover {
				lastErr = fmt.Errorf("transaction %s: submit: %w", txID, serr)
				continue
			}
			l.log.Debug("submit ambiguous, asking status by tx id", "tx", txID, "err", serr)
			if byID == nil {
				c, err := l.commitByID(ep, txID)
				if err != nil {
					return nil, err
				}
				byID = c
			}
			commit = byID
		}
		status, err := l.status(ctx, commit)
		if err == nil {
			return status, nil
		}
		failover = l.outcome(ep, idx, err)
		if serr != nil {
			lastErr = fmt.Errorf("transaction %s: submit: %w; status: %w", txID, serr, err)
		} else {
			lastErr = fmt.Errorf("transaction %s: status: %w", txID, err)
		}
		if ctx.Err() != nil || (!retryable(err) && (serr == nil || !retryable(serr))) {
			break
		}
	}
	return nil, lastErr
}

// moveTransaction rebinds an endorsed transaction to another gateway: the
// same bytes, so the same transaction id, endorsements and (once sent)
// signature.
func (l *Ledger) moveTransaction(txn *client.Transaction, to *endpoint) (*client.Transaction, error) {
	b, err := txn.Bytes()
	if err != nil {
		return nil, fmt.Errorf("fabric: transaction %s: %w", txn.TransactionID(), err)
	}
	moved, err := to.gw.NewTransaction(b)
	if err != nil {
		return nil, fmt.Errorf("fabric: transaction %s to %s: %w", txn.TransactionID(), to.addr, err)
	}
	return moved, nil
}

func (l *Ledger) status(ctx context.Context, commit *client.Commit) (*client.Status, error) {
	cctx, cancel := context.WithTimeout(ctx, l.cfg.CommitStatusTimeout)
	defer cancel()
	return commit.StatusWithContext(cctx)
}

// commitByID builds a commit-status request for a transaction id, signed
// by this identity, so the outcome of a transaction can be learned even
// when its submit call failed.
func (l *Ledger) commitByID(ep *endpoint, txID string) (*client.Commit, error) {
	req, err := proto.Marshal(&gateway.CommitStatusRequest{
		ChannelId:     l.cfg.Channel,
		TransactionId: txID,
		Identity:      l.creator,
	})
	if err != nil {
		return nil, fmt.Errorf("fabric: commit status request: %w", err)
	}
	b, err := proto.Marshal(&gateway.SignedCommitStatusRequest{Request: req})
	if err != nil {
		return nil, fmt.Errorf("fabric: commit status request: %w", err)
	}
	return ep.gw.NewCommit(b)
}

// Retry waits. A peer behind on blocks catches up within milliseconds
// (blocks reach all peers from the orderer at once), so that case starts
// short; an unreachable gateway or orderer gets longer.
const (
	backoffBase   = 100 * time.Millisecond
	backoffLagged = 20 * time.Millisecond
)

// backoff waits before attempt n (n >= 1): 100 ms doubling to 2 s, or
// until ctx ends or the Ledger closes.
func (l *Ledger) backoff(ctx context.Context, n int) error { return l.backoffFrom(ctx, backoffBase, n) }

// backoffFrom waits base doubling per attempt, at most 2 s.
func (l *Ledger) backoffFrom(ctx context.Context, base time.Duration, n int) error {
	d := base << min(n-1, 5)
	d = min(d, 2*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.done:
		return errClosed
	}
}
