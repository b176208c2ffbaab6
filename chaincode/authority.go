package chaincode

import (
	"slices"
	"strings"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// Enterprise identity authorities and the enterprise certificates revoked
// under them. A region answers for the enterprises of its own divisions, so
// it alone registers and retires the authorities that certify them and
// records their revocations. The ledger holds CA certificates and
// revocation ids (hashes of issuer and serial), never an enterprise's USCC.

// covers reports whether every authority division prefix lies inside one of
// the region's own prefixes.
func covers(region, authority []string) (string, bool) {
	for _, d := range authority {
		if !slices.ContainsFunc(region, func(p string) bool { return strings.HasPrefix(d, p) }) {
			return d, false
		}
	}
	return "", true
}

// RegisterAuthority registers an identity authority for divisions of the
// caller's region. The contract sets the status and the registration time;
// a client's own are ignored. Registering the identical authority again is
// a no-op (a retired one stays retired); other content under the same id is
// a conflict.
func (c Contract) RegisterAuthority(ctx TxContext, authorityJSON string) error {
	in, err := decodeArg[credit.IdentityAuthority](authorityJSON, "authority")
	if err != nil {
		return err
	}
	caller, err := c.callerRegion(ctx)
	if err != nil {
		return err
	}
	if in.Region == "" {
		in.Region = caller.ID
	}
	if in.Region != caller.ID {
		return errorf(CodeDenied, "region %s may register authorities only for itself, not for %s", caller.ID, in.Region)
	}
	if err := in.Validate(); err != nil {
		return errorf(CodeInvalid, "authority %s: %v", credit.Quote(in.ID), err)
	}
	if d, ok := covers(caller.Divisions, in.Divisions); !ok {
		return errorf(CodeDenied, "authority %s: division %s is not one of region %s's divisions %v", in.ID, d, caller.ID, caller.Divisions)
	}
	old, ok, err := getJSON[credit.IdentityAuthority](ctx, prefixAuthority+in.ID, "authority")
	if err != nil {
		return err
	}
	if ok {
		// Same id means the same certificate; the rest must match too.
		if old.Name == in.Name && old.Region == in.Region && slices.Equal(old.Divisions, in.Divisions) {
			return nil // a retry of the same registration
		}
		return errorf(CodeConflict, "authority %s is already registered by region %s with other content", in.ID, old.Region)
	}
	now, err := txTime(ctx)
	if err != nil {
		return err
	}
	rec := credit.IdentityAuthority{
		ID: in.ID, Name: in.Name, Cert: in.Cert, Region: in.Region, Divisions: in.Divisions,
		Status: credit.StatusActive, RegisteredAt: now,
	}
	if err := putJSON(ctx, prefixAuthority+rec.ID, rec); err != nil {
		return err
	}
	return emit(ctx, EventAuthorityChanged, EventPayload{Authority: &rec})
}

// RetireAuthority retires an authority of the caller's region at the
// transaction's time: consents it certified stop counting. Retiring a
// retired authority returns it unchanged.
func (c Contract) RetireAuthority(ctx TxContext, id string) (credit.IdentityAuthority, error) {
	caller, err := c.callerRegion(ctx)
	if err != nil {
		return credit.IdentityAuthority{}, err
	}
	a, err := c.getAuthority(ctx, id)
	if err != nil {
		return a, err
	}
	if a.Region != caller.ID {
		return a, errorf(CodeDenied, "authority %s was registered by region %s; only it may retire it", id, a.Region)
	}
	if a.Status == credit.StatusRetired {
		return a, nil
	}
	now, err := txTime(ctx)
	if err != nil {
		return a, err
	}
	if now.Before(a.RegisteredAt) {
		// As for consents: on Fabric the client dates the proposal.
		return a, errorf(CodeDenied, "authority %s: retirement time %s is before its registration at %s",
			id, now.Format(time.RFC3339Nano), a.RegisteredAt.Format(time.RFC3339Nano))
	}
	a.Status, a.RetiredAt = credit.StatusRetired, &now
	if err := putJSON(ctx, prefixAuthority+id, a); err != nil {
		return a, err
	}
	return a, emit(ctx, EventAuthorityChanged, EventPayload{Authority: &a})
}

func (Contract) getAuthority(ctx TxContext, id string) (credit.IdentityAuthority, error) {
	a, ok, err := getJSON[credit.IdentityAuthority](ctx, prefixAuthority+id, "authority")
	if err != nil {
		return a, err
	}
	if !ok {
		return a, errorf(CodeNotFound, "authority %s", credit.Quote(id))
	}
	return a, nil
}

// GetAuthorities lists every authority ever registered, retired included,
// by id.
func (Contract) GetAuthorities(ctx TxContext) ([]credit.IdentityAuthority, error) {
	return listJSON[credit.IdentityAuthority](ctx, prefixAuthority, "authority")
}

// RevokeCertificate records that an enterprise certificate issued under one
// of the caller region's authorities is revoked, at the transaction's time.
// Only the revocation id and the authority are taken from the argument.
// Revoking a revoked certificate returns the first revocation.
func (c Contract) RevokeCertificate(ctx TxContext, revocationJSON string) (credit.CertRevocation, error) {
	var none credit.CertRevocation
	in, err := decodeArg[credit.CertRevocation](revocationJSON, "revocation")
	if err != nil {
		return none, err
	}
	if err := credit.ValidateRevocationID(in.ID); err != nil {
		return none, errorf(CodeInvalid, "%v", err)
	}
	if in.Authority == "" {
		return none, errorf(CodeInvalid, "revocation %s: authority missing", in.ID)
	}
	caller, err := c.callerRegion(ctx)
	if err != nil {
		return none, err
	}
	a, err := c.getAuthority(ctx, in.Authority)
	if err != nil {
		return none, err
	}
	if a.Region != caller.ID {
		return none, errorf(CodeDenied, "authority %s was registered by region %s; only it may revoke its certificates", a.ID, a.Region)
	}
	old, ok, err := getJSON[credit.CertRevocation](ctx, prefixRevocation+in.ID, "revocation")
	if err != nil {
		return none, err
	}
	if ok {
		return old, nil
	}
	now, err := txTime(ctx)
	if err != nil {
		return none, err
	}
	if now.Before(a.RegisteredAt) {
		return none, errorf(CodeDenied, "revocation %s: time %s is before authority %s was registered at %s",
			in.ID, now.Format(time.RFC3339Nano), a.ID, a.RegisteredAt.Format(time.RFC3339Nano))
	}
	rec := credit.CertRevocation{ID: in.ID, Authority: a.ID, Region: a.Region, RevokedAt: now}
	if err := putJSON(ctx, prefixRevocation+rec.ID, rec); err != nil {
		return none, err
	}
	return rec, emit(ctx, EventCertRevoked, EventPayload{Revocation: &rec})
}

// GetRevocations lists every revoked enterprise certificate, by id.
func (Contract) GetRevocations(ctx TxContext) ([]credit.CertRevocation, error) {
	return listJSON[credit.CertRevocation](ctx, prefixRevocation, "revocation")
}
