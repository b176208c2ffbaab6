package node

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// The operator's calls on enterprise identity: this region registers and
// retires the identity authorities of its divisions and revokes the
// certificates they issued. The ledger's contract has the last word on
// each; the node checks what it can first so that a mistake is told in
// words, not as a ledger refusal.

// AuthorityRequest is the body of POST /v1/authorities.
type AuthorityRequest struct {
	// Cert is the authority's CA certificate, DER.
	Cert []byte `json:"cert"`
	// Name defaults to the certificate's subject common name.
	Name string `json:"name,omitempty"`
	// Divisions are the division-code prefixes the authority certifies;
	// empty: every division of this region.
	Divisions []string `json:"divisions,omitempty"`
}

// RevocationRequest is the body of POST /v1/revocations: either the
// certificate itself (its chain, leaf first, DER), from which the node
// derives the revocation id and finds the registered authority it chains
// to, or that id and authority when the certificate is lost.
type RevocationRequest struct {
	Cert      [][]byte `json:"cert,omitempty"`
	ID        string   `json:"id,omitempty"`
	Authority string   `json:"authority,omitempty"`
}

func invalid(format string, args ...any) error {
	return credit.Refuse(credit.CodeInvalidQuery, format, args...)
}

// RegisterAuthority registers an enterprise identity authority for this
// region on the ledger and returns it as the ledger recorded it.
func (n *Node) RegisterAuthority(ctx context.Context, req AuthorityRequest) (credit.IdentityAuthority, error) {
	ca, err := x509.ParseCertificate(req.Cert)
	if err != nil {
		return credit.IdentityAuthority{}, invalid("authority certificate: %w", err)
	}
	a := credit.IdentityAuthority{ID: credit.AuthorityID(req.Cert), Name: req.Name, Cert: req.Cert, Region: n.cfg.Region,
		Divisions: req.Divisions, Status: credit.StatusActive}
	if a.Name == "" {
		a.Name = ca.Subject.CommonName
	}
	if len(a.Divisions) == 0 {
		r, err := n.deps.Ledger.Region(ctx, n.cfg.Region)
		if err != nil {
			return a, fmt.Errorf("region %s's divisions: %w", n.cfg.Region, err)
		}
		a.Divisions = r.Divisions
	}
	if err := a.Validate(); err != nil {
		return a, invalid("authority: %w", err)
	}
	if err := n.deps.Ledger.RegisterAuthority(ctx, a); err != nil {
		return a, err
	}
	if got, ok, err := n.authority(ctx, a.ID); err == nil && ok {
		a = got
	}
	n.awaitTrust(ctx, func(t *credit.TrustSet) bool { _, ok := t.Authority(a.ID); return ok })
	n.log.Info("identity authority registered", "authority", a.ID, "name", a.Name, "divisions", a.Divisions)
	return a, nil
}

// awaitTrustFor bounds how long an admin call waits for the node's own
// view to show its change.
const awaitTrustFor = 10 * time.Second

// awaitTrust waits until the node's ledger view shows a change this node
// just made, so that when the admin call returns, the node's next
// decision (a consent recorded by the next command) already applies it.
// The ledger has the change either way: past the bound the call returns
// and the view catches up on its own.
func (n *Node) awaitTrust(ctx context.Context, done func(*credit.TrustSet) bool) {
	if n.view == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, awaitTrustFor)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !done(n.view.Trust()) {
		select {
		case <-ctx.Done():
			n.log.Warn("the ledger view does not show this node's identity change yet", "err", ctx.Err())
			return
		case <-tick.C:
		}
	}
}

// RetireAuthority retires one of this region's identity authorities:
// consents its certificates signed stop counting.
func (n *Node) RetireAuthority(ctx context.Context, id string) (credit.IdentityAuthority, error) {
	if err := credit.ValidateRevocationID(id); err != nil {
		// The same form: the hex SHA-256 of the CA certificate.
		return credit.IdentityAuthority{}, invalid("authority id %s: want the 64 hex digits of the SHA-256 of its certificate", credit.Quote(id))
	}
	a, err := n.deps.Ledger.RetireAuthority(ctx, id)
	if err != nil {
		return a, err
	}
	n.awaitTrust(ctx, func(t *credit.TrustSet) bool { got, ok := t.Authority(id); return !ok || got.RetiredAt != nil })
	n.log.Info("identity authority retired", "authority", a.ID, "name", a.Name)
	return a, nil
}

// RevokeCertificate records on the ledger that an enterprise certificate
// issued under one of this region's authorities is revoked: consents it
// signs from now on are refused. The ledger learns only the certificate's
// revocation id, never its USCC.
func (n *Node) RevokeCertificate(ctx context.Context, req RevocationRequest) (credit.CertRevocation, error) {
	r := credit.CertRevocation{ID: req.ID, Authority: req.Authority, Region: n.cfg.Region}
	if len(req.Cert) > 0 {
		id, auth, err := n.chainsTo(ctx, req.Cert)
		if err != nil {
			return r, err
		}
		if (req.ID != "" && req.ID != id) || (req.Authority != "" && req.Authority != auth) {
			return r, invalid("revocation: the id or authority given do not match the certificate (%s under %s)", id, auth)
		}
		r.ID, r.Authority = id, auth
	}
	if err := credit.ValidateRevocationID(r.ID); err != nil {
		return r, invalid("revocation: %w (or send the certificate)", err)
	}
	a, ok, err := n.authority(ctx, r.Authority)
	switch {
	case err != nil:
		return r, err
	case !ok:
		return r, invalid("revocation: authority %s is not registered", credit.Quote(r.Authority))
	case a.Region != n.cfg.Region:
		return r, invalid("revocation: authority %s belongs to region %s; only it revokes under it", a.ID, a.Region)
	}
	got, err := n.deps.Ledger.RevokeCertificate(ctx, r)
	if err != nil {
		return r, err
	}
	// Revoked in the view when a consent signed now under the certificate
	// would be refused.
	probe := credit.CertifiedKey{Authority: got.Authority, Revocation: got.ID}
	n.awaitTrust(ctx, func(t *credit.TrustSet) bool {
		now := n.now()
		return credit.CheckCertified(probe, &credit.ConsentGrant{ID: "probe", SignedAt: now}, t, now, now) != nil
	})
	n.log.Info("enterprise certificate revoked", "revocation", got.ID, "authority", got.Authority)
	return got, nil
}

// chainsTo finds the registered authority a certificate chain (leaf
// first) ends at, and the leaf's revocation id. It is checked at the
// leaf's first valid moment, so an expired certificate can be revoked too.
func (n *Node) chainsTo(ctx context.Context, chain [][]byte) (id, authority string, err error) {
	if len(chain) > credit.MaxCertChain {
		return "", "", invalid("certificate chain of %d, at most %d", len(chain), credit.MaxCertChain)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return "", "", invalid("enterprise certificate: %w", err)
	}
	inter := x509.NewCertPool()
	for i, der := range chain[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return "", "", invalid("certificate %d of the chain: %w", i+1, err)
		}
		inter.AddCert(c)
	}
	auths, err := n.deps.Ledger.Authorities(ctx)
	if err != nil {
		return "", "", fmt.Errorf("identity authorities: %w", err)
	}
	roots := x509.NewCertPool()
	for _, a := range auths {
		if c, err := x509.ParseCertificate(a.Cert); err == nil {
			roots.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: leaf.NotBefore,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return "", "", invalid("the certificate (subject %s, issuer %s) does not chain to a registered identity authority: %w",
			credit.Quote(leaf.Subject.String()), credit.Quote(leaf.Issuer.String()), err)
	}
	return credit.RevocationID(leaf), credit.AuthorityID(chains[0][len(chains[0])-1].Raw), nil
}

// authority reads one authority from the ledger.
func (n *Node) authority(ctx context.Context, id string) (credit.IdentityAuthority, bool, error) {
	auths, err := n.deps.Ledger.Authorities(ctx)
	if err != nil {
		return credit.IdentityAuthority{}, false, fmt.Errorf("identity authorities: %w", err)
	}
	i := slices.IndexFunc(auths, func(a credit.IdentityAuthority) bool { return a.ID == id })
	if i < 0 {
		return credit.IdentityAuthority{}, false, nil
	}
	return auths[i], true, nil
}

func (n *Node) handleRegisterAuthority(w http.ResponseWriter, r *http.Request) {
	var req AuthorityRequest
	if err := decode(r, &req); err != nil {
		n.fail(w, err)
		return
	}
	a, err := n.RegisterAuthority(r.Context(), req)
	if err != nil {
		n.fail(w, err)
		return
	}
	noteTarget(r, "authority "+a.ID)
	writeJSON(w, http.StatusCreated, a)
}

func (n *Node) handleRetireAuthority(w http.ResponseWriter, r *http.Request) {
	a, err := n.RetireAuthority(r.Context(), r.PathValue("id"))
	if err != nil {
		n.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (n *Node) handleRevokeCertificate(w http.ResponseWriter, r *http.Request) {
	var req RevocationRequest
	if err := decode(r, &req); err != nil {
		n.fail(w, err)
		return
	}
	if len(req.Cert) == 0 && (req.ID == "" || req.Authority == "") {
		n.fail(w, invalid("revocation: send the certificate (cert), or its revocation id (id) and authority"))
		return
	}
	rev, err := n.RevokeCertificate(r.Context(), req)
	if err != nil {
		n.fail(w, err)
		return
	}
	noteTarget(r, "revocation "+rev.ID)
	writeJSON(w, http.StatusOK, rev)
}
