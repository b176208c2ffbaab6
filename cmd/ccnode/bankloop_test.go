package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node/bankclient"
)

// queryOutcome is one bank query a background loop sent: when it was
// sent and answered, and the answer (res, and its parts by region) or
// the refusal.
type queryOutcome struct {
	start, end time.Time
	err        error
	res        *bankclient.Consolidated
	parts      map[credit.RegionID]bankclient.RegionStatus
}

// queryLoop is a bank querying its home node back to back, as the
// consortium journeys need while the membership changes, keeping every
// outcome.
type queryLoop struct {
	mu       sync.Mutex
	outcomes []queryOutcome
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func startQueryLoop(ctx context.Context, c *bankclient.Client, grant *credit.ConsentGrant) *queryLoop {
	l := &queryLoop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			o := queryOutcome{start: time.Now()}
			qctx, cancel := context.WithTimeout(ctx, time.Minute)
			_, o.res, o.err = c.Query(qctx, bankclient.QueryRequest{Consent: grant})
			cancel()
			o.end = time.Now()
			if o.res != nil {
				o.parts = map[credit.RegionID]bankclient.RegionStatus{}
				for _, st := range o.res.Regions {
					o.parts[st.Region] = st
				}
			}
			l.mu.Lock()
			l.outcomes = append(l.outcomes, o)
			l.mu.Unlock()
		}
	}()
	return l
}

// Stop ends the loop, waits for the query in flight and returns every
// outcome; calling it again returns the same.
func (l *queryLoop) Stop() []queryOutcome {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.outcomes
}

func describeOutcome(o queryOutcome) string {
	if o.err != nil {
		return o.err.Error()
	}
	var s []string
	for id, st := range o.parts {
		s = append(s, fmt.Sprintf("%s:%s %s", id, st.Status, st.Reason))
	}
	return strings.Join(s, ", ")
}
