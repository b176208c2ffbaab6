// Package chaincode is the consortium's ledger contract: member regions and
// banks, consent commitments, receipt-log checkpoints, and the enterprise
// identity authorities with the certificates revoked under them, with the
// access rules that bind each region to its own records.
//
// The rules live in Contract, written against the small TxContext
// interface. FabricContract adapts them to fabric-contract-api-go for a
// real Fabric channel (run as chaincode-as-a-service by ./server); the
// embedded ledger in network/embedded calls them directly. Both therefore
// enforce exactly the same rules.
//
// The caller's identity is its MSP id, mapped to a region through the
// member records held on the ledger itself — never through a hard-coded
// organisation name. The contract is deterministic: it reads no clock but
// the transaction timestamp, iterates no map into state, draws no random
// numbers. It stores no record contents, no subject USCC and no
// bank-to-enterprise pair: consents are held as SHA-256 commitments.
//
// Transactions (contract name "ccnode"; every argument and result a string,
// JSON of the credit types): Bootstrap(regions, banks), GetRegions,
// GetRegion(id), UpdateRegion(region), GetBanks, GetBank(id),
// RegisterBank(bank), RetireBank(id), RecordConsent(commitment),
// RevokeConsent(id), GetConsent(id), GetConsentAt(id, RFC 3339 time),
// AnchorCheckpoint(checkpoint, proof — JSON array of base64 hashes, or ""
// for a region's first checkpoint), GetLatestCheckpoint(region),
// GetCheckpointHistory(region), RegisterAuthority(authority),
// RetireAuthority(id), GetAuthorities, RevokeCertificate(revocation),
// GetRevocations, ProposeRegion(member descriptor), ApproveRegion(id),
// RetireRegion(id), GetRegionProposals. Funcs is the same list as a
// table (arguments, read or write, the method it runs) that every ledger
// backend routes by.
//
// Each writing transaction sets exactly one chaincode event, named by its
// kind (member_changed, consent_recorded, consent_revoked,
// checkpoint_anchored, authority_changed, certificate_revoked,
// region_proposed, region_approved) with an
// EventPayload body; retries that change
// nothing set none. Bootstrap sets one member_changed for the whole
// membership: subscribers re-read the members on any member_changed.
// Refusals are errors whose message starts "ccnode:<code>: " (see
// ParseError), the only thing Fabric carries back to the client.
//
// On Fabric, GetConsentAt needs the peers' history database
// (ledger.history.enableHistoryDatabase, on by default).
//
// It imports nothing from the project but credit, because it is built and
// packaged on its own.
package chaincode
