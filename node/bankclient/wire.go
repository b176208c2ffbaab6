package bankclient

import (
	"encoding/base64"
	"net/http"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// The bank API's wire types are defined here, once: the node answers with
// them (package node aliases them) and a bank decodes them, so the two
// cannot drift apart.

// Region statuses in a consolidated report.
const (
	StatusOK             = "ok"
	StatusDenied         = "denied"
	StatusUnavailable    = "unavailable"
	StatusInvalidReceipt = "invalid_receipt"
	// StatusRetired: the region left the consortium (retired on the
	// ledger by a majority of the regions); it is not asked, and its
	// peer is cut off. Message says since when.
	StatusRetired = "retired"
)

// RegionStatus is one region's part of a consolidated report. A refused
// region's Reason and Message are the code and message it gave.
type RegionStatus struct {
	Region      credit.RegionID `json:"region"`
	Status      string          `json:"status"`
	Reason      credit.Code     `json:"reason,omitempty"`
	Message     string          `json:"message,omitempty"`
	RecordCount int             `json:"record_count"`
	Report      *credit.Report  `json:"report,omitempty"`
	Receipt     *credit.Receipt `json:"receipt,omitempty"`
	LeafIndex   *uint64         `json:"leaf_index,omitempty"`
	Ack         *credit.Ack     `json:"ack,omitempty"`
	// Canon is the answering node's own copy of Report's canonical
	// encoding, which it writes the answer from; never on the wire, nil
	// in a decoded answer.
	Canon []byte `json:"-"`
	// Leaf is the answering node's copy of Receipt's LeafBytes, which it
	// writes the answer from; never on the wire, nil in a decoded answer.
	Leaf []byte `json:"-"`
}

// Consolidated is the bank's answer: every region's slice with its receipt
// and the home node's ack, and a status per region.
type Consolidated struct {
	QueryDigest string          `json:"query_digest"`
	Subject     credit.USCC     `json:"uscc"`
	Bank        credit.BankID   `json:"bank"`
	Home        credit.RegionID `json:"home_region"`
	RecordCount int             `json:"record_count"`
	Regions     []RegionStatus  `json:"regions"`
	Elapsed     float64         `json:"elapsed_ms"`
}

// ReceiptProof is a logged receipt with its inclusion proof: against the
// anchored checkpoint that covers it when there is one, else against the
// log's current head (Checkpoint nil: not yet anchored).
type ReceiptProof struct {
	Receipt credit.Receipt `json:"receipt"`
	// Leaf is the log entry's bytes: the receipt's canonical JSON, the
	// receipt field of its answered export line byte for byte. Its RFC 6962
	// leaf hash, SHA-256(0x00 || Leaf), is what Proof proves.
	Leaf       []byte                     `json:"leaf"`
	LeafIndex  uint64                     `json:"leaf_index"`
	TreeSize   uint64                     `json:"tree_size"`
	Root       []byte                     `json:"root"`
	Proof      [][]byte                   `json:"proof"`
	Acks       []credit.Ack               `json:"acks"`
	Checkpoint *credit.AnchoredCheckpoint `json:"checkpoint"`
}

// ConsistencyProof is an RFC 6962 consistency proof that the log at From's
// size is a prefix of the log at To's, between two checkpoints of one
// region anchored on the ledger.
type ConsistencyProof struct {
	From  credit.AnchoredCheckpoint `json:"from"`
	To    credit.AnchoredCheckpoint `json:"to"`
	Proof [][]byte                  `json:"proof"`
}

// ConsentResponse is the answer of the consent endpoints.
type ConsentResponse struct {
	Consent    *credit.ConsentGrant     `json:"consent,omitempty"`
	Commitment credit.ConsentCommitment `json:"commitment"`
	Status     credit.ConsentStatus     `json:"status"`
}

// APIError is the JSON body of every error response. Code is stable, one
// of credit.Codes() (also when a remote region refused); Message is for
// humans.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// A bank reads a receipt (it holds the subject's USCC and the consent
// document) with a credit.ReceiptRead signed by its key, carried in three
// headers beside the receipt id in the path.
const (
	HeaderBank      = "CCNode-Bank"
	HeaderTime      = "CCNode-Time"      // RFC 3339, within the node's query window
	HeaderSignature = "CCNode-Signature" // standard base64 of the ed25519 signature
)

// SetReceiptReadHeaders puts a signed read's fields in req's headers.
func SetReceiptReadHeaders(req *http.Request, rr *credit.ReceiptRead) {
	for k, v := range receiptReadHeader(rr) {
		req.Header[k] = v
	}
}

func receiptReadHeader(rr *credit.ReceiptRead) http.Header {
	h := http.Header{}
	h.Set(HeaderBank, string(rr.Bank))
	h.Set(HeaderTime, rr.Time.UTC().Format(time.RFC3339Nano))
	h.Set(HeaderSignature, base64.StdEncoding.EncodeToString(rr.Sig))
	return h
}
