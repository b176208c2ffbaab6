package node

import (
	"net/http"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node/bankclient"
)

// The bank API's wire types and receipt-read headers are bankclient's:
// one definition that the node answers with and a bank decodes.
type (
	Consolidated     = bankclient.Consolidated
	RegionStatus     = bankclient.RegionStatus
	ReceiptProof     = bankclient.ReceiptProof
	ConsistencyProof = bankclient.ConsistencyProof
	ConsentResponse  = bankclient.ConsentResponse
	APIError         = bankclient.APIError
	// StatusError is an error response of the API, with its refusal code.
	StatusError = bankclient.Error
)

// Region statuses in a consolidated report.
const (
	StatusOK             = bankclient.StatusOK
	StatusDenied         = bankclient.StatusDenied
	StatusUnavailable    = bankclient.StatusUnavailable
	StatusInvalidReceipt = bankclient.StatusInvalidReceipt
	StatusRetired        = bankclient.StatusRetired
)

// The headers of a bank's signed receipt read.
const (
	HeaderBank      = bankclient.HeaderBank
	HeaderTime      = bankclient.HeaderTime
	HeaderSignature = bankclient.HeaderSignature
)

// SetReceiptReadHeaders puts a signed read's fields in req's headers.
func SetReceiptReadHeaders(req *http.Request, rr *credit.ReceiptRead) {
	bankclient.SetReceiptReadHeaders(req, rr)
}
