package fabric

import (
	"errors"
	"sync"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// endpoint is one gateway peer: its own gRPC connection and gateway.
type endpoint struct {
	addr     string
	conn     *grpc.ClientConn
	gw       *client.Gateway
	network  *client.Network
	contract *client.Contract
}

// endpoints keeps which gateway peer is in use and which were found
// unavailable. The one in use stays in use until it fails (so a node's
// calls and event stream go to one peer, and the log says which); a failed
// one is passed over for a cooldown that doubles while it keeps failing,
// so a dead peer does not cost every call a failed connection.
type endpoints struct {
	list     []*endpoint
	cooldown time.Duration
	now      func() time.Time

	mu        sync.Mutex
	current   int
	downUntil []time.Time
	failures  []int
}

func newEndpoints(list []*endpoint, cooldown time.Duration) *endpoints {
	return &endpoints{
		list: list, cooldown: cooldown, now: time.Now,
		downUntil: make([]time.Time, len(list)), failures: make([]int, len(list)),
	}
}

// maxCooldownDoublings bounds the cooldown at 8 times the configured one.
const maxCooldownDoublings = 3

// pick returns the endpoint to use now: the current one unless it is
// cooling down, else the next one in configured order that is not, else
// (all unavailable) the one whose cooldown ends first. switched reports a
// change from the previous pick, for the log.
func (e *endpoints) pick() (ep *endpoint, idx int, switched bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	n := len(e.list)
	best := e.current
	for i := 0; i < n; i++ {
		j := (e.current + i) % n
		if !now.Before(e.downUntil[j]) {
			best = j
			break
		}
		if e.downUntil[j].Before(e.downUntil[best]) {
			best = j
		}
	}
	switched = best != e.current
	e.current = best
	return e.list[best], best, switched
}

// failed records that endpoint idx was unavailable and reports whether it
// had been answering until now (so the change is logged once).
func (e *endpoints) failed(idx int) (wasUp bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	wasUp = e.failures[idx] == 0
	d := e.cooldown << min(e.failures[idx], maxCooldownDoublings)
	e.failures[idx]++
	e.downUntil[idx] = e.now().Add(d)
	return wasUp
}

// succeeded records that endpoint idx answered.
func (e *endpoints) succeeded(idx int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failures[idx] = 0
	e.downUntil[idx] = time.Time{}
}

// available reports how many endpoints are not cooling down.
func (e *endpoints) available() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	n := 0
	for _, t := range e.downUntil {
		if !now.Before(t) {
			n++
		}
	}
	return n
}

// endpointDown reports whether err means the gateway peer itself could not
// be reached (connection refused or lost), as opposed to an answer from it:
// only then is another endpoint tried. A refusal, an endorsement failure
// on other peers or a timeout is not the endpoint's fault.
func endpointDown(err error) bool {
	if err == nil {
		return false
	}
	var st interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &st) {
		return false
	}
	return st.GRPCStatus().Code() == codes.Unavailable
}
