package chaincode

// Func is one transaction of the contract as a client or a server routes
// it by name. The routing of every ledger backend (the embedded server
// and its remote callers, the Fabric client, the simulated peer in its
// tests, the fault injector) reads this one table, so a transaction added
// here is routed everywhere; FabricContract's methods are checked against
// it by its test.
type Func struct {
	Name string // the transaction's name on the channel
	Args int    // how many string arguments it takes
	// Submit is true for a transaction that writes (endorsed, ordered,
	// committed), false for a read that is evaluated on one peer.
	Submit bool
	// Run calls the contract with exactly Args arguments; its result is
	// the method's own (nil for one that returns only an error), for the
	// caller to encode as JSON or use as is.
	Run func(ctx TxContext, args []string) (any, error)
}

// funcs is the contract's transaction surface (see the package comment for
// each one's arguments).
var funcs = []Func{
	{"Bootstrap", 2, true, func(t TxContext, a []string) (any, error) { return nil, Contract{}.Bootstrap(t, a[0], a[1]) }},
	{"GetRegions", 0, false, func(t TxContext, a []string) (any, error) { return Contract{}.GetRegions(t) }},
	{"GetRegion", 1, false, func(t TxContext, a []string) (any, error) { return Contract{}.GetRegion(t, a[0]) }},
	{"UpdateRegion", 1, true, func(t TxContext, a []string) (any, error) { return nil, Contract{}.UpdateRegion(t, a[0]) }},
	{"ProposeRegion", 1, true, func(t TxContext, a []string) (any, error) { return Contract{}.ProposeRegion(t, a[0]) }},
	{"ApproveRegion", 1, true, func(t TxContext, a []string) (any, error) { return Contract{}.ApproveRegion(t, a[0]) }},
	{"RetireRegion", 1, true, func(t TxContext, a []string) (any, error) { return Contract{}.RetireRegion(t, a[0]) }},
	{"GetRegionProposals", 0, false, func(t TxContext, a []string) (any, error) { return Contract{}.GetRegionProposals(t) }},
	{"GetBanks", 0, false, func(t TxContext, a []string) (any, error) { return Contract{}.GetBanks(t) }},
	{"GetBank", 1, false, func(t TxContext, a []string) (any, error) { return Contract{}.GetBank(t, a[0]) }},
	{"RegisterBank", 1, true, func(t TxContext, a []string) (any, error) { return nil, Contract{}.RegisterBank(t, a[0]) }},
	{"RetireBank", 1, true, func(t TxContext, a []string) (any, error) { return nil, Contract{}.RetireBank(t, a[0]) }},
	{"RecordConsent", 1, true, func(t TxContext, a []string) (any, error) { return nil, Contract{}.RecordConsent(t, a[0]) }},
	{"RevokeConsent", 1, true, func(t TxContext, a []string) (any, error) { return Contract{}.RevokeConsent(t, a[0]) }},
	{"GetConsent", 1, false, func(t TxContext, a []string) (any, error) { return Contract{}.GetConsent(t, a[0]) }},
	{"GetConsentAt", 2, false, func(t TxContext, a []string) (any, error) { return Contract{}.GetConsentAt(t, a[0], a[1]) }},
	{"AnchorCheckpoint", 2, true, func(t TxContext, a []string) (any, error) { return Contract{}.AnchorCheckpoint(t, a[0], a[1]) }},
	{"GetLatestCheckpoint", 1, false, func(t TxContext, a []string) (any, error) { return Contract{}.GetLatestCheckpoint(t, a[0]) }},
	{"GetCheckpointHistory", 1, false, func(t TxContext, a []string) (any, error) { return Contract{}.GetCheckpointHistory(t, a[0]) }},
	{"RegisterAuthority", 1, true, func(t TxContext, a []string) (any, error) { return nil, Contract{}.RegisterAuthority(t, a[0]) }},
	{"RetireAuthority", 1, true, func(t TxContext, a []string) (any, error) { return Contract{}.RetireAuthority(t, a[0]) }},
	{"GetAuthorities", 0, false, func(t TxContext, a []string) (any, error) { return Contract{}.GetAuthorities(t) }},
	{"RevokeCertificate", 1, true, func(t TxContext, a []string) (any, error) { return Contract{}.RevokeCertificate(t, a[0]) }},
	{"GetRevocations", 0, false, func(t TxContext, a []string) (any, error) { return Contract{}.GetRevocations(t) }},
}

// Funcs returns every transaction of the contract, in a fixed order. The
// slice is a copy: the table itself cannot be changed from outside.
func Funcs() []Func { return append([]Func(nil), funcs...) }

// LookupFunc returns the transaction named name, if the contract has one.
func LookupFunc(name string) (Func, bool) {
	for _, f := range funcs {
		if f.Name == name {
			return f, true
		}
	}
	return Func{}, false
}
