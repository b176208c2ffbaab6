package audit

import (
	"fmt"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// Rule names the check a finding failed. The values are stable: they are
// the keys of the JSON report.
type Rule string

// The rules, grouped by the seven checks.
const (
	// RuleExport: a line of an export cannot be read, or holds a receipt
	// of another region than the export's.
	RuleExport Rule = "export"
	// The export's structure, checked on every line whether or not an
	// anchored checkpoint covers it yet.
	RuleOrder     Rule = "export.order"     // a line's index is not its position (leaves contiguous from 0)
	RuleDuplicate Rule = "export.duplicate" // a receipt id on two lines
	RuleSize      Rule = "export.size"      // the header's size is not the number of lines

	// (1) signatures, each with the key registered at the document's time.
	RuleQuerySig      Rule = "signature.query"      // the bank's, on the query
	RuleReceiptSig    Rule = "signature.receipt"    // the answering region's
	RuleAckSig        Rule = "signature.ack"        // the requesting region's
	RuleCheckpointSig Rule = "signature.checkpoint" // the region's, on an anchored checkpoint

	// (2) consent at the time of the answer.
	//
	// RuleConsent: credit.DecideConsent, the rule every node applies,
	// refuses the query with the ledger's facts at the receipt's time
	// (the enterprise's and issuing region's signatures included); the
	// finding's Code is the refusal's, one finding per rule broken.
	RuleConsent Rule = "consent"
	// RuleConsentDocument: the document differs from the copy the
	// auditor was given (an auditor-only check).
	RuleConsentDocument Rule = "consent.document"
	// RuleReceiptScope: the receipt lists categories its query did not
	// ask (with the consent covering the query, the answer is inside it).
	RuleReceiptScope Rule = "receipt.scope"
	// RuleRequester: the receipt answers a region other than the querying
	// bank's home: a member relayed another region's bank's query, and
	// the answering region did not refuse it (wrong_home_region).
	RuleRequester Rule = "receipt.requester"

	// (3) inclusion: a receipt older than the anchoring delay that no
	// anchored checkpoint covers.
	RuleInclusion Rule = "inclusion"
	// (4) consistency: an anchored checkpoint that is not a prefix of the
	// log the latest anchored checkpoint commits to.
	RuleConsistency Rule = "consistency"
	// (5) completeness: the export does not rebuild the anchored roots.
	RuleCompleteness Rule = "completeness"
	// (6) cross-check.
	RuleUnlogged Rule = "crosscheck.unlogged" // acknowledged by the requester, absent from the answerer's log
	RuleUnacked  Rule = "crosscheck.unacked"  // an answer with data that has no acknowledgement
	// (7) timeliness: anchored, but later than the configured delay.
	RuleTimeliness Rule = "timeliness"
)

// Finding is one failed check.
type Finding struct {
	Rule    Rule            `json:"rule"`
	Code    credit.Code     `json:"code,omitempty"`    // the refusal a node owed, for a consent finding
	Region  credit.RegionID `json:"region"`            // the region whose log, receipt or export is at fault
	Receipt string          `json:"receipt,omitempty"` // receipt id, when one receipt is concerned
	Leaf    *uint64         `json:"leaf,omitempty"`    // leaf index in the region's log, when known
	Source  string          `json:"source,omitempty"`  // file:line of the export line
	Time    *time.Time      `json:"time,omitempty"`    // the receipt's time
	Detail  string          `json:"detail"`
}

func (f Finding) String() string {
	s := fmt.Sprintf("%s region=%s", f.Rule, f.Region)
	if f.Code != "" {
		s += " code=" + string(f.Code)
	}
	if f.Receipt != "" {
		s += " receipt=" + f.Receipt
	}
	if f.Leaf != nil {
		s += fmt.Sprintf(" leaf=%d", *f.Leaf)
	}
	if f.Source != "" {
		s += " at " + f.Source
	}
	return s + ": " + f.Detail
}

// RegionSummary is what the audit saw of one region's log.
type RegionSummary struct {
	Region       credit.RegionID `json:"region"`
	Source       string          `json:"source"`
	Receipts     uint64          `json:"receipts"`      // lines in the export
	Checked      uint64          `json:"checked"`       // receipts inside the filters, fully checked
	AnchoredSize uint64          `json:"anchored_size"` // latest anchored checkpoint's size
	Verified     uint64          `json:"verified"`      // leaves the export proved under an anchored root
	Pending      uint64          `json:"pending"`       // not yet anchored, within the delay
	Checkpoints  int             `json:"checkpoints"`
	Findings     int             `json:"findings"`
}

// Report is the outcome of an audit.
type Report struct {
	Started   time.Time       `json:"started"`
	Finished  time.Time       `json:"finished"`
	Regions   []RegionSummary `json:"regions"`
	Received  uint64          `json:"received"`  // lines of requesters' exports
	Findings  []Finding       `json:"findings"`  // at most Options.MaxFindings
	Total     int             `json:"total"`     // findings, including those not kept
	ByRule    map[Rule]int    `json:"by_rule"`   // findings per rule, including those not kept
	Truncated bool            `json:"truncated"` // Findings holds fewer than Total
	// Answers on a revoked consent given no later than
	// Options.RevocationBound after the revocation: not findings, but
	// an auditor sees how many there were.
	WithinRevocationBound uint64 `json:"within_revocation_bound"`
}

// OK reports whether the audit found nothing.
func (r *Report) OK() bool { return r.Total == 0 }

func leafPtr(i uint64) *uint64 { return &i }
