//go:build linux

package faults

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
)

// Bank signs queries as one registered bank.
type Bank struct {
	ID  credit.BankID
	Key ed25519.PrivateKey
}

// NewBank makes a bank with a fresh key.
func NewBank(id credit.BankID) (Bank, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Bank{}, err
	}
	return Bank{ID: id, Key: key}, nil
}

// Member is the bank's record for registration.
func (b Bank) Member() credit.BankMember {
	return credit.BankMember{ID: b.ID, Name: string(b.ID), PubKey: b.Key.Public().(ed25519.PublicKey)}
}

// Query signs a query on g's subject, categories and purpose with a fresh
// nonce and the current time.
func (b Bank) Query(g *credit.ConsentGrant) (*credit.Query, error) {
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	q := &credit.Query{Version: 1, Bank: b.ID, Subject: g.Subject, Categories: g.Categories, Purpose: g.Purpose,
		ConsentID: g.ID, Consent: g, Nonce: "n-" + hex.EncodeToString(nonce), Time: time.Now().UTC()}
	return q, q.Sign(b.Key)
}

// Load drives bank queries at a node from a fixed number of workers until
// its context ends. Target is asked for the client before every query, so
// the load follows a node that restarts on a new port.
type Load struct {
	Workers int
	Target  func() *node.Client
	Next    func() (*credit.Query, error)
	Timeout time.Duration // per query; default 10 s
	// OnAnswer sees every consolidated report a node returned.
	OnAnswer func(*node.Consolidated)
}

// LoadStats counts the outcomes of a load run.
type LoadStats struct {
	OK        int
	Refused   map[credit.Code]int // answered with an API error, by code
	Failed    int                 // no HTTP answer (connection refused or reset, timeout)
	Latencies []time.Duration     // of OK queries
}

// Run blocks until ctx ends and returns the figures.
func (l Load) Run(ctx context.Context) LoadStats {
	timeout := l.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	var mu sync.Mutex
	st := LoadStats{Refused: map[credit.Code]int{}}
	var wg sync.WaitGroup
	for range l.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				q, err := l.Next()
				if err != nil {
					mu.Lock()
					st.Failed++
					mu.Unlock()
					continue
				}
				qctx, cancel := context.WithTimeout(ctx, timeout)
				t0 := time.Now()
				res, err := l.Target().Query(qctx, q)
				d := time.Since(t0)
				cancel()
				if err == nil && l.OnAnswer != nil {
					l.OnAnswer(res)
				}
				var se *node.StatusError
				mu.Lock()
				switch {
				case err == nil:
					st.OK++
					st.Latencies = append(st.Latencies, d)
				case errors.As(err, &se):
					st.Refused[se.Reason()]++
				case ctx.Err() == nil:
					st.Failed++
				}
				mu.Unlock()
				if err != nil && !errors.As(err, &se) {
					// The node is down or restarting: do not spin.
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}()
	}
	wg.Wait()
	return st
}

// Quantile of the OK latencies (0 when there are none).
func (s LoadStats) Quantile(q float64) time.Duration {
	if len(s.Latencies) == 0 {
		return 0
	}
	l := slices.Clone(s.Latencies)
	slices.Sort(l)
	return l[min(len(l)-1, int(q*float64(len(l))))]
}
