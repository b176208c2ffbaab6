package chaincode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/prdcredit/ccnode/credit"
)

// Event names, one per transaction.
const (
	EventMemberChanged      = "member_changed"
	EventConsentRecorded    = "consent_recorded"
	EventConsentRevoked     = "consent_revoked"
	EventCheckpointAnchored = "checkpoint_anchored"
	EventAuthorityChanged   = "authority_changed"
	EventCertRevoked        = "certificate_revoked"
)

// EventPayload is the JSON body of every contract event; one field is set,
// except for Bootstrap's: it writes many members in one transaction, and
// Fabric keeps one event per transaction, so its event lists every member
// it wrote in Regions and Banks (with Region, the caller, for readers that
// know only the one-member form).
type EventPayload struct {
	Region     *credit.RegionMember       `json:"region,omitempty"`
	Bank       *credit.BankMember         `json:"bank,omitempty"`
	Regions    []credit.RegionMember      `json:"regions,omitempty"`
	Banks      []credit.BankMember        `json:"banks,omitempty"`
	Consent    *credit.ConsentCommitment  `json:"consent,omitempty"`
	Checkpoint *credit.AnchoredCheckpoint `json:"checkpoint,omitempty"`
	Authority  *credit.IdentityAuthority  `json:"authority,omitempty"`
	Revocation *credit.CertRevocation     `json:"revocation,omitempty"`
	Proposal   *credit.RegionProposal     `json:"proposal,omitempty"`
}

// ConsentAt is the answer of GetConsentAt.
type ConsentAt struct {
	Commitment credit.ConsentCommitment `json:"commitment"`
	Status     credit.ConsentStatus     `json:"status"`
}

// State keys. Plain prefixes rather than Fabric composite keys, so that
// range reads work the same on both backends.
const (
	prefixRegion     = "region/"
	prefixBank       = "bank/"
	prefixConsent    = "consent/"
	prefixCheckpoint = "checkpoint/"
	prefixLatest     = "latest/"
	prefixAuthority  = "authority/"
	prefixRevocation = "revocation/"
)

// rangeEnd is the exclusive end of a prefix range: '/' + 1 = '0'.
func rangeEnd(prefix string) string { return strings.TrimSuffix(prefix, "/") + "0" }

func checkpointKey(r credit.RegionID, size uint64) string {
	return fmt.Sprintf("%s%s/%020d", prefixCheckpoint, r, size)
}

// Contract holds the rules. It has no state of its own.
type Contract struct{}

func getJSON[T any](ctx TxContext, key, what string) (T, bool, error) {
	var v T
	b, err := ctx.GetState(key)
	if err != nil {
		return v, false, err
	}
	if b == nil {
		return v, false, nil
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, false, fmt.Errorf("%s: stored value unreadable: %w", what, err)
	}
	return v, true, nil
}

func putJSON(ctx TxContext, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return ctx.PutState(key, b)
}

func emit(ctx TxContext, name string, p EventPayload) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return ctx.SetEvent(name, b)
}

func decodeArg[T any](arg, what string) (T, error) {
	var v T
	dec := json.NewDecoder(strings.NewReader(arg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, errorf(CodeInvalid, "%s: %v", what, err)
	}
	return v, nil
}

func txTime(ctx TxContext) (time.Time, error) {
	t, err := ctx.TxTime()
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

func listJSON[T any](ctx TxContext, prefix, what string) ([]T, error) {
	kvs, err := ctx.GetStateRange(prefix, rangeEnd(prefix))
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(kvs))
	for _, kv := range kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("%s %s: stored value unreadable: %w", what, kv.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// callerRegion maps the caller's MSP id to its active region.
func (c Contract) callerRegion(ctx TxContext) (credit.RegionMember, error) {
	r, err := c.callerLogOwner(ctx)
	if err == nil && r.Status != credit.StatusActive {
		return credit.RegionMember{}, errorf(CodeDenied, "region %s of MSP %s is %s", r.ID, r.MSPID, r.Status)
	}
	return r, err
}

// callerLogOwner maps the caller's MSP id to its region, active or
// retired. A retired region still anchors its receipt log, so that the
// receipts it issued while a member (those its node answered until it saw
// the retirement) stay provable; the audit refuses any issued after it.
func (Contract) callerLogOwner(ctx TxContext) (credit.RegionMember, error) {
	msp, err := ctx.MSPID()
	if err != nil {
		return credit.RegionMember{}, errorf(CodeDenied, "caller identity: %v", err)
	}
	regions, err := listJSON[credit.RegionMember](ctx, prefixRegion, "region")
	if err != nil {
		return credit.RegionMember{}, err
	}
	for _, r := range regions {
		if r.MSPID == msp {
			return r, nil
		}
	}
	return credit.RegionMember{}, errorf(CodeDenied, "MSP %s is not a member region", msp)
}

func validateRegion(r credit.RegionMember) error {
	if err := credit.ValidateRegionID(r.ID); err != nil {
		return errorf(CodeInvalid, "region: %v", err)
	}
	if r.MSPID == "" {
		return errorf(CodeInvalid, "region %s: msp_id missing", r.ID)
	}
	if r.PeerID == "" {
		return errorf(CodeInvalid, "region %s: peer_id missing", r.ID)
	}
	if len(r.PubKey) != 32 {
		return errorf(CodeInvalid, "region %s: pub_key must be a 32-byte ed25519 key", r.ID)
	}
	if len(r.Divisions) == 0 {
		return errorf(CodeInvalid, "region %s: divisions missing", r.ID)
	}
	if _, err := credit.NewRegionMap([]credit.Region{{ID: r.ID, Divisions: r.Divisions}}); err != nil {
		return errorf(CodeInvalid, "region %s: %v", r.ID, err)
	}
	if r.Status != credit.StatusActive && r.Status != credit.StatusRetired {
		return errorf(CodeInvalid, "region %s: status %q", r.ID, r.Status)
	}
	return nil
}

func validateBank(b credit.BankMember) error {
	if err := credit.ValidateBankID(b.ID); err != nil {
		return errorf(CodeInvalid, "bank: %v", err)
	}
	if len(b.PubKey) != 32 {
		return errorf(CodeInvalid, "bank %s: pub_key must be a 32-byte ed25519 key", b.ID)
	}
	if b.Status != credit.StatusActive && b.Status != credit.StatusRetired {
		return errorf(CodeInvalid, "bank %s: status %q", b.ID, b.Status)
	}
	return nil
}

// Bootstrap writes the first members of an empty ledger. The caller must be
// one of the regions it names.
func (c Contract) Bootstrap(ctx TxContext, regionsJSON, banksJSON string) error {
	existing, err := ctx.GetStateRange(prefixRegion, rangeEnd(prefixRegion))
	if err != nil {
		return err
	}
	if len(existing) > 0 {
		return errorf(CodeConflict, "ledger already has %d member regions: bootstrap runs once", len(existing))
	}
	regions, err := decodeArg[[]credit.RegionMember](regionsJSON, "regions")
	if err != nil {
		return err
	}
	banks, err := decodeArg[[]credit.BankMember](banksJSON, "banks")
	if err != nil {
		return err
	}
	if len(regions) == 0 {
		return errorf(CodeInvalid, "bootstrap needs at least one region")
	}
	msp, err := ctx.MSPID()
	if err != nil {
		return errorf(CodeDenied, "caller identity: %v", err)
	}
	now, err := txTime(ctx)
	if err != nil {
		return err
	}
	ids, msps := map[credit.RegionID]bool{}, map[string]bool{}
	var all []credit.Region
	callerListed := false
	for i := range regions {
		r := &regions[i]
		if r.Status == "" {
			r.Status = credit.StatusActive
		}
		if err := validateRegion(*r); err != nil {
			return err
		}
		if ids[r.ID] || msps[r.MSPID] {
			return errorf(CodeInvalid, "region %s: id or MSP id listed twice", r.ID)
		}
		for _, o := range regions[:i] {
			if err := identityOf(o, *r); err != nil {
				return err
			}
		}
		ids[r.ID], msps[r.MSPID] = true, true
		callerListed = callerListed || r.MSPID == msp
		all = append(all, credit.Region{ID: r.ID, Divisions: r.Divisions})
		r.UpdatedAt = now
	}
	if _, err := credit.NewRegionMap(all); err != nil {
		return errorf(CodeInvalid, "regions: %v", err)
	}
	if !callerListed {
		return errorf(CodeDenied, "caller MSP %s is not one of the bootstrap regions", msp)
	}
	for i := range banks {
		b := &banks[i]
		if b.Status == "" {
			b.Status = credit.StatusActive
		}
		if err := validateBank(*b); err != nil {
			return err
		}
		if !ids[b.Region] {
			return errorf(CodeInvalid, "bank %s: home region %s is not in the bootstrap", b.ID, b.Region)
		}
		b.UpdatedAt = now
	}
	var caller credit.RegionMember
	for _, r := range regions {
		if err := putJSON(ctx, prefixRegion+string(r.ID), r); err != nil {
			return err
		}
		if r.MSPID == msp {
			caller = r
		}
	}
	for _, b := range banks {
		if err := putJSON(ctx, prefixBank+string(b.ID), b); err != nil {
			return err
		}
	}
	// One event per transaction, naming every member written: a member's
	// key history starts here, and an auditor replaying events must see it.
	return emit(ctx, EventMemberChanged, EventPayload{Region: &caller, Regions: regions, Banks: banks})
}

// GetRegions lists every region, active or retired, by id.
func (Contract) GetRegions(ctx TxContext) ([]credit.RegionMember, error) {
	return listJSON[credit.RegionMember](ctx, prefixRegion, "region")
}

// GetRegion reads one region.
func (Contract) GetRegion(ctx TxContext, id string) (credit.RegionMember, error) {
	r, ok, err := getJSON[credit.RegionMember](ctx, prefixRegion+id, "region")
	if err != nil {
		return r, err
	}
	if !ok {
		return r, errorf(CodeNotFound, "region %s", id)
	}
	return r, nil
}

// UpdateRegion changes the caller's own region record: addresses, name,
// key (with a key change, to a key and peer id no other region has); not
// its MSP id, its divisions or its status.
func (c Contract) UpdateRegion(ctx TxContext, regionJSON string) error {
	r, err := decodeArg[credit.RegionMember](regionJSON, "region")
	if err != nil {
		return err
	}
	caller, err := c.callerRegion(ctx)
	if err != nil {
		return err
	}
	if r.ID != caller.ID {
		return errorf(CodeDenied, "region %s may change only its own record, not %s", caller.ID, r.ID)
	}
	if r.MSPID != caller.MSPID {
		return errorf(CodeDenied, "region %s cannot change its MSP id", caller.ID)
	}
	if r.Status != caller.Status {
		// One region alone must not leave the consortium's count of
		// active regions: retirement is RetireRegion's majority vote.
		return errorf(CodeDenied, "region %s cannot change its own status from %s to %s: a region is retired only by a majority of the active regions (RetireRegion, 'ccnode region retire')",
			caller.ID, caller.Status, credit.Quote(string(r.Status)))
	}
	if err := validateRegion(r); err != nil {
		return err
	}
	now, err := txTime(ctx)
	if err != nil {
		return err
	}
	if err := checkKeyChange(caller, &r, now); err != nil {
		return err
	}
	// The divisions a region serves decide which enterprises its identity
	// authorities may certify and which records it answers for: the vote
	// that admitted it set them, and no region widens its own.
	if !slices.Equal(r.Divisions, caller.Divisions) {
		return errorf(CodeDenied, "region %s cannot change its own divisions from %v to %v: a region's divisions are the ones the vote admitting it approved",
			caller.ID, caller.Divisions, r.Divisions)
	}
	others, err := c.GetRegions(ctx)
	if err != nil {
		return err
	}
	for _, o := range others {
		if err := identityOf(o, r); err != nil {
			return err
		}
	}
	r.UpdatedAt = now
	if err := putJSON(ctx, prefixRegion+string(r.ID), r); err != nil {
		return err
	}
	return emit(ctx, EventMemberChanged, EventPayload{Region: &r})
}

// keyChangeSkew is how far in the ledger's future a key change may be
// dated: the signer's clock against the ledger's.
const keyChangeSkew = 5 * time.Minute

// checkKeyChange lets r change the record's node key only with a key
// change the record's current key signed, dated after the record's last
// change (so an old signed change cannot be replayed to bring back a
// retired key) and not in the ledger's future. The replaced key goes to
// PastKeys. A record whose key stays keeps the last key change and the past
// keys the ledger holds, whatever r carries.
func checkKeyChange(cur credit.RegionMember, r *credit.RegionMember, now time.Time) error {
	if bytes.Equal(cur.PubKey, r.PubKey) {
		r.KeyChange, r.PastKeys = cur.KeyChange, cur.PastKeys
		return nil
	}
	k := r.KeyChange
	if k == nil {
		return errorf(CodeDenied, "region %s: a new node key needs a key change signed by the current key (ccnode keys rotate)", r.ID)
	}
	if err := k.Verify(cur.PubKey, r.ID, r.PubKey); err != nil {
		return errorf(CodeDenied, "%v", err)
	}
	if !k.SignedAt.After(cur.UpdatedAt) {
		return errorf(CodeDenied, "region %s: key change signed at %s, not after the record's last change at %s (a replayed change?)",
			r.ID, k.SignedAt.Format(time.RFC3339Nano), cur.UpdatedAt.Format(time.RFC3339Nano))
	}
	if k.SignedAt.After(now.Add(keyChangeSkew)) {
		return errorf(CodeInvalid, "region %s: key change signed at %s, more than %s after the ledger's time %s",
			r.ID, k.SignedAt.Format(time.RFC3339Nano), keyChangeSkew, now.Format(time.RFC3339Nano))
	}
	r.PastKeys = append(append([]credit.PastKey(nil), cur.PastKeys...), credit.PastKey{PubKey: cur.PubKey, Until: now})
	return nil
}

// GetBanks lists every bank by id.
func (Contract) GetBanks(ctx TxContext) ([]credit.BankMember, error) {
	return listJSON[credit.BankMember](ctx, prefixBank, "bank")
}

// GetBank reads one bank.
func (Contract) GetBank(ctx TxContext, id string) (credit.BankMember, error) {
	b, ok, err := getJSON[credit.BankMember](ctx, prefixBank+id, "bank")
	if err != nil {
		return b, err
	}
	if !ok {
		return b, errorf(CodeNotFound, "bank %s", id)
	}
	return b, nil
}

// RegisterBank adds or updates a bank whose home region is the caller's.
func (c Contract) RegisterBank(ctx TxContext, bankJSON string) error {
	b, err := decodeArg[credit.BankMember](bankJSON, "bank")
	if err != nil {
		return err
	}
	caller, err := c.callerRegion(ctx)
	if err != nil {
		return err
	}
	if b.Region != caller.ID {
		return errorf(CodeDenied, "region %s may register only its own banks, not a bank of %s", caller.ID, b.Region)
	}
	if b.Status == "" {
		b.Status = credit.StatusActive
	}
	if err := validateBank(b); err != nil {
		return err
	}
	old, ok, err := getJSON[credit.BankMember](ctx, prefixBank+string(b.ID), "bank")
	if err != nil {
		return err
	}
	if ok && old.Region != caller.ID {
		return errorf(CodeDenied, "bank %s belongs to region %s", b.ID, old.Region)
	}
	if b.UpdatedAt, err = txTime(ctx); err != nil {
		return err
	}
	if err := putJSON(ctx, prefixBank+string(b.ID), b); err != nil {
		return err
	}
	return emit(ctx, EventMemberChanged, EventPayload{Bank: &b})
}

// RetireBank retires one of the caller's banks.
func (c Contract) RetireBank(ctx TxContext, id string) error {
	caller, err := c.callerRegion(ctx)
	if err != nil {
		return err
	}
	b, err := c.GetBank(ctx, id)
	if err != nil {
		return err
	}
	if b.Region != caller.ID {
		return errorf(CodeDenied, "region %s may retire only its own banks; %s belongs to %s", caller.ID, id, b.Region)
	}
	b.Status = credit.StatusRetired
	if b.UpdatedAt, err = txTime(ctx); err != nil {
		return err
	}
	if err := putJSON(ctx, prefixBank+id, b); err != nil {
		return err
	}
	return emit(ctx, EventMemberChanged, EventPayload{Bank: &b})
}

// RecordConsent stores a consent commitment issued by the caller's region.
// The contract sets the status and the recording time itself.
func (c Contract) RecordConsent(ctx TxContext, commitmentJSON string) error {
	in, err := decodeArg[credit.ConsentCommitment](commitmentJSON, "consent")
	if err != nil {
		return err
	}
	caller, err := c.callerRegion(ctx)
	if err != nil {
		return err
	}
	if in.Region != caller.ID {
		return errorf(CodeDenied, "region %s may record only its own consents, not one issued by %s", caller.ID, in.Region)
	}
	if err := credit.ValidateID("consent id", in.ID); err != nil {
		return errorf(CodeInvalid, "%v", err)
	}
	if len(in.Commitment) != 32 {
		return errorf(CodeInvalid, "consent %s: commitment must be 32 bytes (SHA-256)", in.ID)
	}
	if in.ValidFrom.IsZero() || !in.ValidUntil.After(in.ValidFrom) {
		return errorf(CodeInvalid, "consent %s: validity window is empty", in.ID)
	}
	old, ok, err := getJSON[credit.ConsentCommitment](ctx, prefixConsent+in.ID, "consent")
	if err != nil {
		return err
	}
	if ok {
		if bytes.Equal(old.Commitment, in.Commitment) && old.Region == in.Region &&
			old.ValidFrom.Equal(in.ValidFrom) && old.ValidUntil.Equal(in.ValidUntil) {
			return nil // a retry of the same recording
		}
		return errorf(CodeConflict, "consent %s is already recorded with other content", in.ID)
	}
	now, err := txTime(ctx)
	if err != nil {
		return err
	}
	rec := credit.ConsentCommitment{
		ID: in.ID, Commitment: in.Commitment, Region: in.Region,
		ValidFrom: in.ValidFrom.UTC(), ValidUntil: in.ValidUntil.UTC(),
		Status: credit.ConsentActive, RecordedAt: now,
	}
	if err := putJSON(ctx, prefixConsent+in.ID, rec); err != nil {
		return err
	}
	return emit(ctx, EventConsentRecorded, EventPayload{Consent: &rec})
}

// RevokeConsent revokes a consent at the transaction's time. There is no
// argument for the time: a revocation cannot be back-dated. On Fabric that
// time is the proposal's timestamp, which the endorsing peers' TimeWindowCheck
// auth filter (core.yaml handlers.authFilters, peer.authentication.timewindow,
// 15m by default) holds near their own clocks; the contract adds that it
// never precedes the consent's recording.
func (c Contract) RevokeConsent(ctx TxContext, id string) (credit.ConsentCommitment, error) {
	caller, err := c.callerRegion(ctx)
	if err != nil {
		return credit.ConsentCommitment{}, err
	}
	rec, err := c.GetConsent(ctx, id)
	if err != nil {
		return rec, err
	}
	if rec.Region != caller.ID {
		return rec, errorf(CodeDenied, "consent %s was issued by %s; only it may revoke", id, rec.Region)
	}
	if rec.Status == credit.ConsentRevoked {
		return rec, nil
	}
	now, err := txTime(ctx)
	if err != nil {
		return rec, err
	}
	if now.Before(rec.RecordedAt) {
		// On Fabric the timestamp comes from the client's proposal; a
		// revocation dated before the recording is a back-dating attempt.
		return rec, errorf(CodeDenied, "consent %s: revocation time %s is before its recording at %s",
			id, now.Format(time.RFC3339Nano), rec.RecordedAt.Format(time.RFC3339Nano))
	}
	rec.Status, rec.RevokedAt = credit.ConsentRevoked, &now
	if err := putJSON(ctx, prefixConsent+id, rec); err != nil {
		return rec, err
	}
	return rec, emit(ctx, EventConsentRevoked, EventPayload{Consent: &rec})
}

// GetConsent reads the current commitment.
func (Contract) GetConsent(ctx TxContext, id string) (credit.ConsentCommitment, error) {
	rec, ok, err := getJSON[credit.ConsentCommitment](ctx, prefixConsent+id, "consent")
	if err != nil {
		return rec, err
	}
	if !ok {
		return rec, errorf(CodeNotFound, "consent %s", id)
	}
	return rec, nil
}

// GetConsentAt returns the version of a commitment committed at or before
// t, from the key's history, with its status at t. A revocation committed
// after t does not show.
func (Contract) GetConsentAt(ctx TxContext, id, at string) (ConsentAt, error) {
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return ConsentAt{}, errorf(CodeInvalid, "time %q: want RFC 3339", at)
	}
	hist, err := ctx.History(prefixConsent + id)
	if err != nil {
		return ConsentAt{}, err
	}
	// Order by commit time ourselves rather than trust the backend's order.
	sort.SliceStable(hist, func(i, j int) bool { return hist[i].Time.Before(hist[j].Time) })
	var found *credit.ConsentCommitment
	for _, h := range hist {
		if h.Time.After(t) {
			break
		}
		if h.IsDelete {
			found = nil
			continue
		}
		var rec credit.ConsentCommitment
		if err := json.Unmarshal(h.Value, &rec); err != nil {
			return ConsentAt{}, fmt.Errorf("consent %s history: %w", id, err)
		}
		found = &rec
	}
	if found == nil {
		return ConsentAt{}, errorf(CodeNotFound, "consent %s at %s", id, at)
	}
	return ConsentAt{Commitment: *found, Status: found.StatusAt(t)}, nil
}

// AnchorCheckpoint anchors a region's signed checkpoint after verifying its
// signed note (a C2SP tlog-checkpoint under the region's key, stating the
// checkpoint's size and root, with the origin of the region's anchored
// log) and an RFC 6962 consistency proof from the region's latest anchored
// checkpoint. A checkpoint already anchored is returned as it is.
func (c Contract) AnchorCheckpoint(ctx TxContext, checkpointJSON, proofJSON string) (credit.AnchoredCheckpoint, error) {
	var none credit.AnchoredCheckpoint
	cp, err := decodeArg[credit.Checkpoint](checkpointJSON, "checkpoint")
	if err != nil {
		return none, err
	}
	var consistency [][]byte
	if strings.TrimSpace(proofJSON) != "" {
		if consistency, err = decodeArg[[][]byte](proofJSON, "proof"); err != nil {
			return none, err
		}
	}
	caller, err := c.callerLogOwner(ctx)
	if err != nil {
		return none, err
	}
	if cp.Region != caller.ID {
		return none, errorf(CodeDenied, "region %s may anchor only its own log, not %s's", caller.ID, cp.Region)
	}
	if cp.Size == 0 || len(cp.Root) != 32 {
		return none, errorf(CodeInvalid, "checkpoint of %s: want size > 0 and a 32-byte root", cp.Region)
	}
	if err := cp.Verify(caller.PubKey); err != nil {
		return none, errorf(CodeDenied, "%v", err)
	}
	if prev, ok, err := getJSON[credit.AnchoredCheckpoint](ctx, checkpointKey(cp.Region, cp.Size), "checkpoint"); err != nil {
		return none, err
	} else if ok {
		if bytes.Equal(prev.Root, cp.Root) {
			return prev, nil // a retry: already anchored
		}
		return none, errorf(CodeConflict, "region %s already anchored a different root at size %d: the log forked", cp.Region, cp.Size)
	}
	latest, ok, err := getJSON[credit.AnchoredCheckpoint](ctx, prefixLatest+string(cp.Region), "checkpoint")
	if err != nil {
		return none, err
	}
	if ok {
		// The origin names the log a witness follows: one region, one log.
		if o := latest.Origin(); cp.Origin() != o {
			return none, errorf(CodeDenied, "region %s: checkpoint names log %q, its anchored checkpoints name %q", cp.Region, cp.Origin(), o)
		}
		if cp.Size < latest.Size {
			return none, errorf(CodeConflict, "region %s: size %d is smaller than the anchored size %d", cp.Region, cp.Size, latest.Size)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, latest.Size, cp.Size, consistency, latest.Root, cp.Root); err != nil {
			return none, errorf(CodeDenied, "region %s: no valid consistency proof from size %d to %d: %v", cp.Region, latest.Size, cp.Size, err)
		}
	} else if len(consistency) != 0 {
		return none, errorf(CodeInvalid, "region %s: the first checkpoint takes no consistency proof", cp.Region)
	}
	now, err := txTime(ctx)
	if err != nil {
		return none, err
	}
	a := credit.AnchoredCheckpoint{Checkpoint: cp, AnchoredAt: now, TxID: ctx.TxID()}
	if err := putJSON(ctx, checkpointKey(cp.Region, cp.Size), a); err != nil {
		return none, err
	}
	if err := putJSON(ctx, prefixLatest+string(cp.Region), a); err != nil {
		return none, err
	}
	return a, emit(ctx, EventCheckpointAnchored, EventPayload{Checkpoint: &a})
}

// GetLatestCheckpoint reads a region's latest anchored checkpoint.
func (Contract) GetLatestCheckpoint(ctx TxContext, region string) (credit.AnchoredCheckpoint, error) {
	a, ok, err := getJSON[credit.AnchoredCheckpoint](ctx, prefixLatest+region, "checkpoint")
	if err != nil {
		return a, err
	}
	if !ok {
		return a, errorf(CodeNotFound, "no checkpoint anchored by region %s", region)
	}
	return a, nil
}

// GetCheckpointHistory lists a region's anchored checkpoints, oldest first
// (keys carry the zero-padded size, so key order is size order).
func (Contract) GetCheckpointHistory(ctx TxContext, region string) ([]credit.AnchoredCheckpoint, error) {
	return listJSON[credit.AnchoredCheckpoint](ctx, prefixCheckpoint+region+"/", "checkpoint")
}
