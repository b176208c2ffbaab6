package p2p

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Reconnect defaults.
const (
	DefaultReconnectMin = 500 * time.Millisecond
	DefaultReconnectMax = 30 * time.Second
)

// Connector keeps this host connected to every active member region,
// redialling a lost peer with exponential backoff (min doubling to max).
// One goroutine serves all peers and dials them one at a time, so its cost
// does not grow with what peers do; a consortium has about ten.
type Connector struct {
	host     host.Host
	members  *Membership
	min, max time.Duration
	log      *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// NewConnector starts keeping h connected to m's active members. min and
// max bound the backoff (defaults when zero). Close stops it.
func NewConnector(h host.Host, m *Membership, min, max time.Duration, log *slog.Logger) *Connector {
	if min <= 0 {
		min = DefaultReconnectMin
	}
	if max < min {
		max = DefaultReconnectMax
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Connector{host: h, members: m, min: min, max: max, log: log, cancel: cancel, done: make(chan struct{})}
	go c.run(ctx)
	return c
}

type backoff struct {
	next  time.Time
	delay time.Duration
}

func (c *Connector) run(ctx context.Context) {
	defer close(c.done)
	state := map[peer.ID]*backoff{}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-c.members.Changed():
		}
		now := time.Now()
		wake := now.Add(c.max)
		seen := map[peer.ID]bool{}
		for _, m := range c.members.Active() {
			p, ok := c.members.Peer(m.ID)
			if !ok || p == c.host.ID() {
				continue
			}
			seen[p] = true
			b := state[p]
			if b == nil {
				b = &backoff{delay: c.min}
				state[p] = b
			}
			if c.host.Network().Connectedness(p) == network.Connected {
				b.delay, b.next = c.min, time.Time{}
				continue
			}
			if now.Before(b.next) {
				if b.next.Before(wake) {
					wake = b.next
				}
				continue
			}
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.host.Connect(dctx, peer.AddrInfo{ID: p})
			cancel()
			// Connect may succeed at the dialler while the other side's
			// gater refused us: trust connectedness, not the error.
			if err == nil && c.host.Network().Connectedness(p) == network.Connected {
				b.delay, b.next = c.min, time.Time{}
				c.log.Debug("connected", "region", m.ID, "peer", p)
				continue
			}
			b.next = time.Now().Add(b.delay)
			c.log.Debug("dial failed; backing off", "region", m.ID, "peer", p, "retry_in", b.delay, "err", err)
			if b.next.Before(wake) {
				wake = b.next
			}
			b.delay = min(2*b.delay, c.max)
		}
		for p := range state {
			if !seen[p] {
				delete(state, p)
			}
		}
		// Check connectedness at least every min so a dropped peer is
		// redialled promptly.
		if d := time.Until(wake); d > c.min {
			wake = time.Now().Add(c.min)
		}
		timer.Reset(max(time.Until(wake), time.Millisecond))
	}
}

// Close stops the connector and waits for it. Safe to call twice.
func (c *Connector) Close() error {
	c.once.Do(func() {
		c.cancel()
		<-c.done
	})
	return nil
}
