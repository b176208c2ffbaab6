package p2p

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/prdcredit/ccnode/credit"
)

// ErrMemberKey: a member record's peer id is not the peer id of its public
// key. Such a record is left out: the identity that connects must be the
// key that signs receipts.
var ErrMemberKey = errors.New("member peer id does not match its public key")

// Membership is this node's view of the consortium's member regions, fed
// by the node from the ledger (SetMembers on every member-change event). It
// is the host's connection gater: it admits exactly the peers of active
// member regions, and it is the router's and the address book's source of
// regions, keys and addresses. It never reads the ledger itself.
type Membership struct {
	log       *slog.Logger
	overrides map[credit.RegionID][]ma.Multiaddr

	mu       sync.RWMutex
	byPeer   map[peer.ID]credit.RegionID
	byRegion map[credit.RegionID]member
	regions  *credit.RegionMap
	host     host.Host
	notifiee *network.NotifyBundle
	changed  chan struct{}
	// An exchange in flight with a peer that leaves the membership
	// finishes before the peer is disconnected, within drain.
	drain    time.Duration
	inflight map[peer.ID]int
	draining map[peer.ID]*time.Timer
}

type member struct {
	credit.RegionMember
	peer  peer.ID
	addrs []ma.Multiaddr
}

// NewMembership makes an empty view (admitting nobody). overrides replace
// the ledger's addresses of the regions they name (node config).
func NewMembership(log *slog.Logger, overrides map[credit.RegionID][]ma.Multiaddr) *Membership {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Membership{
		log: log, overrides: overrides,
		byPeer: map[peer.ID]credit.RegionID{}, byRegion: map[credit.RegionID]member{},
		changed: make(chan struct{}, 1),
		drain:   DefaultClientTimeout, inflight: map[peer.ID]int{}, draining: map[peer.ID]*time.Timer{},
	}
}

// SetMembers replaces the view with the ledger's member records. Only
// active regions whose peer id matches their key are admitted; the others
// are reported in the returned error (joined ErrMemberKey causes) but do
// not stop the rest. Peers no longer admitted (a retired region, a key
// rotated away) can start no new connection or exchange from then on, and
// are disconnected once their exchanges in flight end (see drainPeer).
func (m *Membership) SetMembers(ms []credit.RegionMember) error {
	byPeer := map[peer.ID]credit.RegionID{}
	byRegion := map[credit.RegionID]member{}
	var regions []credit.Region
	var errs []error
	for _, rm := range ms {
		if rm.Status != credit.StatusActive {
			continue
		}
		mm, err := checkMember(rm)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if o, ok := m.overrides[rm.ID]; ok {
			mm.addrs = o
		}
		byPeer[mm.peer] = rm.ID
		byRegion[rm.ID] = mm
		regions = append(regions, credit.Region{ID: rm.ID, Name: rm.Name, Divisions: rm.Divisions})
	}
	rmap, err := credit.NewRegionMap(regions)
	if err != nil {
		// Routing falls back to asking every region.
		errs = append(errs, fmt.Errorf("division map: %w", err))
		rmap = nil
	}
	m.mu.Lock()
	old := m.byRegion
	m.byPeer, m.byRegion, m.regions = byPeer, byRegion, rmap
	h := m.host
	m.mu.Unlock()
	if h != nil {
		for id, o := range old {
			if _, ok := byRegion[id]; !ok {
				h.Peerstore().ClearAddrs(o.peer)
			}
		}
		m.syncHost(h)
	}
	select {
	case m.changed <- struct{}{}:
	default:
	}
	return errors.Join(errs...)
}

func checkMember(rm credit.RegionMember) (member, error) {
	p, err := peer.Decode(rm.PeerID)
	if err != nil {
		return member{}, fmt.Errorf("region %s: peer id %q: %w: %w", rm.ID, rm.PeerID, ErrMemberKey, err)
	}
	want, err := PeerID(ed25519.PublicKey(rm.PubKey))
	if err != nil || want != p {
		return member{}, fmt.Errorf("region %s: %w", rm.ID, ErrMemberKey)
	}
	mm := member{RegionMember: rm, peer: p}
	for _, a := range rm.Addrs {
		addr, err := ma.NewMultiaddr(a)
		if err != nil {
			continue // a bad address must not cost the region its membership
		}
		mm.addrs = append(mm.addrs, addr)
	}
	return mm, nil
}

// attach makes h's address book and connections follow the view.
func (m *Membership) attach(h host.Host) {
	nb := &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		// A connection secured just before SetMembers removed its peer
		// can be added to the swarm after the sweep; close it here.
		if !m.Admits(c.RemotePeer()) {
			go c.Close()
		}
	}}
	m.mu.Lock()
	m.host, m.notifiee = h, nb
	m.mu.Unlock()
	h.Network().Notify(nb)
	m.syncHost(h)
}

func (m *Membership) syncHost(h host.Host) {
	m.mu.RLock()
	for _, mm := range m.byRegion {
		if mm.peer != h.ID() && len(mm.addrs) > 0 {
			h.Peerstore().SetAddrs(mm.peer, mm.addrs, peerstore.PermanentAddrTTL)
		}
	}
	m.mu.RUnlock()
	for _, p := range h.Network().Peers() {
		if !m.Admits(p) {
			m.drainPeer(p)
		}
	}
}

// drainPeer disconnects p, no longer admitted, once its exchanges in
// flight end, or after the drain bound (the client's exchange deadline).
// A region answers the queries asked while it was a member: the vote that
// retires it can commit while it answers, and its answer and the ack
// must still cross. Nothing new starts meanwhile: the gater refuses new
// connections, the client asks active members only, and the node's
// handler checks the requester's membership on every stream.
func (m *Membership) drainPeer(p peer.ID) {
	m.mu.Lock()
	if _, ok := m.draining[p]; ok {
		m.mu.Unlock()
		return
	}
	if m.inflight[p] == 0 {
		m.mu.Unlock()
		m.closeDrained(p)
		return
	}
	bound := m.drain
	m.draining[p] = time.AfterFunc(bound, func() { m.closeDrained(p) })
	m.mu.Unlock()
	m.log.Info("peer no longer a member: disconnecting it once its exchanges end", "peer", p, "within", bound)
}

// closeDrained disconnects p unless it was admitted again meanwhile.
func (m *Membership) closeDrained(p peer.ID) {
	m.mu.Lock()
	if t, ok := m.draining[p]; ok {
		t.Stop()
		delete(m.draining, p)
	}
	_, admitted := m.byPeer[p]
	h := m.host
	m.mu.Unlock()
	if !admitted && h != nil {
		m.log.Info("disconnecting peer no longer a member", "peer", p)
		_ = h.Network().ClosePeer(p)
	}
}

// hold counts an exchange with p in flight until release is called, so
// that p leaving the membership meanwhile does not cut it.
func (m *Membership) hold(p peer.ID) (release func()) {
	m.mu.Lock()
	m.inflight[p]++
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			m.inflight[p]--
			left := m.inflight[p]
			if left == 0 {
				delete(m.inflight, p)
			}
			_, draining := m.draining[p]
			m.mu.Unlock()
			if left == 0 && draining {
				m.closeDrained(p)
			}
		})
	}
}

// setDrain bounds how long a peer that left stays connected for its
// exchanges in flight.
func (m *Membership) setDrain(d time.Duration) {
	m.mu.Lock()
	m.drain = d
	m.mu.Unlock()
}

// Admits reports whether p is the peer of an active member region.
func (m *Membership) Admits(p peer.ID) bool {
	m.mu.RLock()
	_, ok := m.byPeer[p]
	m.mu.RUnlock()
	return ok
}

// Region returns an active member region's record (wrapping
// ErrUnknownMember when it is not one).
func (m *Membership) Region(id credit.RegionID) (credit.RegionMember, error) {
	m.mu.RLock()
	mm, ok := m.byRegion[id]
	m.mu.RUnlock()
	if !ok {
		return credit.RegionMember{}, fmt.Errorf("region %s: %w", id, ErrUnknownMember)
	}
	return mm.RegionMember, nil
}

// Peer returns the peer id of an active member region.
func (m *Membership) Peer(id credit.RegionID) (peer.ID, bool) {
	m.mu.RLock()
	mm, ok := m.byRegion[id]
	m.mu.RUnlock()
	return mm.peer, ok
}

// RegionOfPeer returns the active member region whose peer p is.
func (m *Membership) RegionOfPeer(p peer.ID) (credit.RegionID, bool) {
	m.mu.RLock()
	id, ok := m.byPeer[p]
	m.mu.RUnlock()
	return id, ok
}

// Active lists the active member regions in id order.
func (m *Membership) Active() []credit.RegionMember {
	m.mu.RLock()
	out := make([]credit.RegionMember, 0, len(m.byRegion))
	for _, mm := range m.byRegion {
		out = append(out, mm.RegionMember)
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b credit.RegionMember) int { return compareStrings(string(a.ID), string(b.ID)) })
	return out
}

// RegistrationRegion is the active region whose divisions hold the
// subject's division code.
func (m *Membership) RegistrationRegion(u credit.USCC) (credit.RegionID, bool) {
	m.mu.RLock()
	rm := m.regions
	m.mu.RUnlock()
	if rm == nil {
		return "", false
	}
	return rm.RegionOf(u)
}

// Changed is signalled (coalesced) after every SetMembers.
func (m *Membership) Changed() <-chan struct{} { return m.changed }

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// The connection gater. Peer ids are known only once the handshake is
// done, so InterceptSecured is where strangers are refused; dialing a
// stranger is refused before any packet is sent.

// InterceptPeerDial refuses to dial non-members.
func (m *Membership) InterceptPeerDial(p peer.ID) bool { return m.Admits(p) }

// InterceptAddrDial refuses to dial non-members.
func (m *Membership) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return m.Admits(p) }

// InterceptAccept lets the handshake start; the peer is not known yet.
func (m *Membership) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured admits authenticated members only, in both directions.
func (m *Membership) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	ok := m.Admits(p)
	if !ok {
		m.log.Debug("refused connection from non-member", "peer", p)
	}
	return ok
}

// InterceptUpgraded has nothing left to check.
func (m *Membership) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
