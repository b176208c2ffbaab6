package fabric

import (
	"context"
	"errors"
	"strings"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prdcredit/ccnode/network"
)

// contractErrorPrefix starts every refusal the contract returns, followed
// by a code and ':' (chaincode package, "ccnode:denied: ..."). The gateway
// wraps it ("chaincode response 500, ccnode:denied: ...") in the gRPC
// status message and in each peer's ErrorDetail, so it is searched for,
// not expected at the start.
const contractErrorPrefix = "ccnode:"

var contractKinds = map[string]error{
	"not_found": network.ErrNotFound,
	"denied":    network.ErrDenied,
	"conflict":  network.ErrConflict,
	"invalid":   network.ErrInvalid,
}

// parseContractError finds a contract refusal in msg and returns its kind
// and the contract's own words.
func parseContractError(msg string) (kind error, detail string, ok bool) {
	for rest := msg; ; {
		i := strings.Index(rest, contractErrorPrefix)
		if i < 0 {
			return nil, "", false
		}
		rest = rest[i+len(contractErrorPrefix):]
		code, tail, found := strings.Cut(rest, ":")
		if !found {
			return nil, "", false
		}
		if k, known := contractKinds[code]; known {
			// A peer's message may carry more after the contract's
			// words (gRPC adds nothing, but be strict about lines).
			tail, _, _ = strings.Cut(tail, "\n")
			return k, strings.TrimSpace(tail), true
		}
	}
}

// mapError turns whatever the gateway client returned into a
// *network.Error whose Kind callers test with errors.Is. Contract refusals
// are read from the per-peer ErrorDetail messages first (the contract's
// exact words) and then from the status message; everything that is not a
// refusal — unreachable peers, timeouts, endorsement mismatch — is
// ErrUnavailable, which callers may retry.
func mapError(op string, err error) error {
	if err == nil {
		return nil
	}
	var ne *network.Error
	if errors.As(err, &ne) {
		return err
	}
	if kind, detail, ok := contractRefusal(err); ok {
		return &network.Error{Op: op, Kind: kind, Msg: detail}
	}
	var commitErr *client.CommitError
	if errors.As(err, &commitErr) {
		return &network.Error{Op: op, Kind: commitKind(commitErr.Code), Msg: err.Error()}
	}
	return &network.Error{Op: op, Kind: network.ErrUnavailable, Msg: err.Error()}
}

// contractRefusal looks for the contract's error code in the gRPC status of
// err: first in each peer's ErrorDetail, then in the status message.
func contractRefusal(err error) (kind error, detail string, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus {
		return parseContractError(err.Error())
	}
	for _, d := range st.Details() {
		if ed, isDetail := d.(*gateway.ErrorDetail); isDetail {
			if kind, detail, ok := parseContractError(ed.GetMessage()); ok {
				return kind, detail, true
			}
		}
	}
	return parseContractError(st.Message())
}

// commitKind classifies a transaction the orderer ordered but the peers
// marked invalid. Read conflicts are retried before this is reached; what
// remains is a policy failure (the regions did not endorse it: denied) or
// a duplicate or otherwise rejected transaction (conflict).
func commitKind(code peer.TxValidationCode) error {
	switch code {
	case peer.TxValidationCode_ENDORSEMENT_POLICY_FAILURE,
		peer.TxValidationCode_BAD_CREATOR_SIGNATURE,
		peer.TxValidationCode_INVALID_ENDORSER_TRANSACTION:
		return network.ErrDenied
	case peer.TxValidationCode_MVCC_READ_CONFLICT, peer.TxValidationCode_PHANTOM_READ_CONFLICT:
		return network.ErrUnavailable
	default:
		return network.ErrConflict
	}
}

// retryable reports whether a failed step may be tried again: the gateway
// or its peers were unreachable or slow, and nothing refused the call.
func retryable(err error) bool {
	if _, _, refused := contractRefusal(err); refused {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted, codes.Canceled:
		return true
	}
	return false
}

// refusedOnlyRemotely reports whether a failed endorsement was refused by
// the contract only on peers of other organisations. The gateway endorses
// on a peer of the caller's own organisation first and stops there if that
// peer refuses, so refusals that all come from other organisations mean
// the local peer accepted and the peers disagree — typically a remote peer
// that has not yet committed the caller's previous transaction and ran the
// contract on older state. Endorsing again shortly after is then correct;
// a refusal by the caller's own peer is final.
func refusedOnlyRemotely(err error, mspID string) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	refused := false
	for _, d := range st.Details() {
		ed, isDetail := d.(*gateway.ErrorDetail)
		if !isDetail {
			continue
		}
		if _, _, isRefusal := parseContractError(ed.GetMessage()); !isRefusal {
			continue
		}
		if ed.GetMspId() == mspID {
			return false
		}
		refused = true
	}
	return refused
}
