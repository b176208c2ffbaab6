package p2p

import "github.com/libp2p/go-libp2p/core/host"

// Attach makes h follow m as NewHost does, for hosts on mocknet.
func (m *Membership) Attach(h host.Host) { m.attach(h) }
