package credit

import "time"

// Proposal kinds: a candidate region joining the consortium, or a member
// region leaving it.
const (
	ProposalJoin   = "join"
	ProposalRetire = "retire"
)

// Proposal statuses. A proposal is open until a majority of the active
// regions approved it; then it is accepted and stays on the ledger as the
// record of who voted.
const (
	ProposalOpen     = "open"
	ProposalAccepted = "accepted"
)

// RegionApproval is one region's vote, as the ledger recorded it.
type RegionApproval struct {
	Region RegionID  `json:"region"`
	TxID   string    `json:"tx_id"`
	At     time.Time `json:"at"`
}

// RegionProposal is a change of the consortium's member regions put to the
// vote of its active regions: a candidate's descriptor to join, or a
// member region to retire.
type RegionProposal struct {
	Kind   string       `json:"kind"` // ProposalJoin or ProposalRetire
	Region RegionMember `json:"region"`
	// ProposedBy is the MSP id that proposed (the candidate's own for a
	// join, the first voting region's for a retirement).
	ProposedBy string           `json:"proposed_by"`
	ProposedAt time.Time        `json:"proposed_at"`
	Approvals  []RegionApproval `json:"approvals"`
	// Needed is the majority of the active regions at the last vote:
	// more than half of them.
	Needed    int        `json:"needed"`
	Status    string     `json:"status"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
}

// RegionVote is the outcome of one approval transaction. Counted is false
// when the voter had already approved (a retry, or a second vote, which is
// not counted) or the proposal was already decided; Detail says which.
type RegionVote struct {
	Proposal RegionProposal `json:"proposal"`
	Counted  bool           `json:"counted"`
	Detail   string         `json:"detail"`
}

// Majority is the number of votes that carry a proposal among n active
// regions: more than half.
func Majority(n int) int { return n/2 + 1 }
