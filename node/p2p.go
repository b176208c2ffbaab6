package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/store"
	"github.com/prdcredit/ccnode/store/receipts"
)

// P2PRouter routes through the libp2p report protocol (package p2p). It
// is handed to New before the p2p router exists, because the router's
// local server needs the node's started receipt log; Set completes it.
// Until then queries find every region unavailable.
type P2PRouter struct {
	mu sync.RWMutex
	r  *p2p.Router
}

// ErrRouterNotSet: the p2p router is not attached yet.
var ErrRouterNotSet = errors.New("p2p router not attached")

// Set attaches the p2p router.
func (a *P2PRouter) Set(r *p2p.Router) {
	a.mu.Lock()
	a.r = r
	a.mu.Unlock()
}

func (a *P2PRouter) get() *p2p.Router {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.r
}

// Query asks the registration region and every other active region.
func (a *P2PRouter) Query(ctx context.Context, _ credit.RegionID, q *credit.Query) []RegionResult {
	r := a.get()
	if r == nil {
		return []RegionResult{{Err: ErrRouterNotSet}}
	}
	res := r.Query(ctx, q)
	out := make([]RegionResult, 0, len(res.Regions))
	for _, rr := range res.Regions {
		o := RegionResult{Region: rr.Region}
		switch rr.Status {
		case p2p.StatusAnswered, p2p.StatusNoData:
			ans := Answer{Receipt: *rr.Receipt, LeafIndex: rr.LeafIndex}
			if rr.Report != nil {
				ans.Report = *rr.Report
			} else {
				ans.Report = credit.NewReport(q.Subject, nil)
			}
			o.Answer = &ans
		case p2p.StatusRefused:
			if reason, ok := reasonOfCode(p2p.CodeOf(rr.Err)); ok {
				o.Err = &Denial{Reason: reason, Detail: fmt.Sprint(rr.Err)}
			} else {
				o.Err = rr.Err
			}
		default:
			o.Err = rr.Err
			if o.Err == nil {
				o.Err = fmt.Errorf("region %s: %s", rr.Region, rr.Status)
			}
		}
		out = append(out, o)
	}
	return out
}

// Acknowledge sends an ack over the ack protocol.
func (a *P2PRouter) Acknowledge(ctx context.Context, region credit.RegionID, ack credit.Ack) error {
	r := a.get()
	if r == nil {
		return ErrRouterNotSet
	}
	return r.Acknowledge(ctx, region, ack)
}

var codeReasons = map[p2p.Code]Reason{
	p2p.CodeBadRequest:          ReasonInvalidQuery,
	p2p.CodeStale:               ReasonStaleQuery,
	p2p.CodeReplayed:            ReasonReplay,
	p2p.CodeBadSignature:        ReasonBadSignature,
	p2p.CodeBankUnknown:         ReasonBankUnknown,
	p2p.CodeBankRetired:         ReasonBankInactive,
	p2p.CodeNoConsent:           ReasonNoConsent,
	p2p.CodeConsentRevoked:      ReasonConsentRevoked,
	p2p.CodeConsentExpired:      ReasonConsentExpired,
	p2p.CodeConsentOutOfScope:   ReasonCategoryScope,
	p2p.CodeConsentWrongGrantee: ReasonWrongGrantee,
	p2p.CodeConsentMismatch:     ReasonConsentMismatch,
}

func reasonOfCode(c p2p.Code) (Reason, bool) {
	r, ok := codeReasons[c]
	return r, ok
}

var reasonCodes = map[Reason]p2p.Code{
	ReasonInvalidQuery:     p2p.CodeBadRequest,
	ReasonStaleQuery:       p2p.CodeStale,
	ReasonReplay:           p2p.CodeReplayed,
	ReasonBadSignature:     p2p.CodeBadSignature,
	ReasonBankUnknown:      p2p.CodeBankUnknown,
	ReasonBankInactive:     p2p.CodeBankRetired,
	ReasonNoConsent:        p2p.CodeNoConsent,
	ReasonConsentRevoked:   p2p.CodeConsentRevoked,
	ReasonConsentExpired:   p2p.CodeConsentExpired,
	ReasonConsentNotYet:    p2p.CodeConsentExpired,
	ReasonCategoryScope:    p2p.CodeConsentOutOfScope,
	ReasonPurposeMismatch:  p2p.CodeConsentOutOfScope,
	ReasonWrongGrantee:     p2p.CodeConsentWrongGrantee,
	ReasonConsentMismatch:  p2p.CodeConsentMismatch,
	ReasonSubjectMismatch:  p2p.CodeConsentMismatch,
	ReasonConsentSignature: p2p.CodeConsentMismatch,
	ReasonWrongHomeRegion:  p2p.CodeBadRequest,
}

// p2pMembers serves the p2p server's member lookups from the view.
type p2pMembers struct{ v *View }

func (m p2pMembers) Region(id credit.RegionID) (credit.RegionMember, error) {
	r, ok := m.v.Region(id)
	if !ok {
		return r, fmt.Errorf("region %s: %w", id, p2p.ErrUnknownMember)
	}
	return r, nil
}

func (m p2pMembers) Bank(id credit.BankID) (credit.BankMember, error) {
	b, ok := m.v.Bank(id)
	if !ok {
		return b, fmt.Errorf("bank %s: %w", id, p2p.ErrUnknownMember)
	}
	return b, nil
}

// p2pConsent is the node's consent check, its refusals in p2p codes. The
// p2p server has validated the query and verified the bank's signature
// against the same view's bank record before it calls Check (the
// p2p.ConsentChecker contract), so this checks the consent only.
type p2pConsent struct{ v *View }

func (c p2pConsent) Check(ctx context.Context, q *credit.Query, at time.Time) error {
	err := c.v.CheckConsent(ctx, q, at)
	if err == nil {
		return nil
	}
	if code, ok := reasonCodes[ReasonOf(err)]; ok {
		return p2p.Refuse(code, "%v", err)
	}
	return err // unavailable: fail closed
}

// p2pRecords reads the region's records for the p2p server.
type p2pRecords struct{ r store.ReportReader }

func (s p2pRecords) Report(ctx context.Context, subject credit.USCC, cats []credit.Category) ([]credit.Record, error) {
	return s.r.Report(ctx, subject, store.Filter{Categories: cats})
}

// p2pNonces is the answering side's own nonce store.
type p2pNonces struct {
	n   *receipts.Nonces
	now func() time.Time
}

func (s p2pNonces) Seen(bank credit.BankID, nonce string, until time.Time) (bool, error) {
	err := s.n.Use(bank, nonce, max(until.Sub(s.now()), time.Second))
	if errors.Is(err, receipts.ErrReplay) {
		return true, nil
	}
	return false, err
}

// P2PServerConfig is the answering side's configuration for p2p.NewServer,
// drawn from a started node: its key, ledger view, consent check, receipt
// log and an answering-side nonce store, with records read from rr.
func (n *Node) P2PServerConfig(rr store.ReportReader) (p2p.ServerConfig, error) {
	if n.rlog == nil {
		return p2p.ServerConfig{}, fmt.Errorf("%w: start the node first", ErrNotReady)
	}
	return p2p.ServerConfig{
		NetworkID: n.cfg.P2P.NetworkID, Region: n.cfg.Region, Key: n.key,
		Members: p2pMembers{n.view}, Consent: p2pConsent{n.view}, Source: p2pRecords{rr},
		Receipts: p2pLog{n.rlog, n}, Acks: n.rlog, Nonces: p2pNonces{receipts.NewNoncesIn(n.deps.DB, 'a'), n.now},
		Now: n.now, Window: n.cfg.Query.Window, Timeout: n.cfg.Query.RegionTimeout * 3,
		Logger: n.log.With("part", "p2p"),
	}, nil
}

// p2pLog counts receipts the p2p server logs and wakes the anchorer.
type p2pLog struct {
	*receipts.Log
	n *Node
}

func (l p2pLog) Append(ctx context.Context, r *credit.Receipt) (uint64, error) {
	idx, err := l.Log.Append(ctx, r)
	if err != nil {
		return idx, err
	}
	l.n.metrics.receipts.Inc()
	l.n.receiptAppended()
	return idx, l.n.anchorIfPerReceipt(ctx, idx)
}
