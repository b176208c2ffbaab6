package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/atomicfile"
)

// The admin API: operator calls (recording and revoking consents,
// registering banks, reading any receipt) on a listener of their own,
// loopback by default, apart from the bank API. Every call carries one
// named operator's token ("Authorization: Bearer <token>") and is logged
// with the operator's name, the action and its target.

// DefaultAdminAddr is the admin API's default address: loopback, so only
// this machine reaches it.
const DefaultAdminAddr = "127.0.0.1:9440"

// AdminConfig configures the admin API.
type AdminConfig struct {
	// Addr is the admin API's listen address.
	Addr string `yaml:"addr"`
	// OperatorsFile lists the operators: a name and the SHA-256 of the
	// token of each (see operators.go). Read on every admin call.
	OperatorsFile string `yaml:"operators_file"`
}

func (a AdminConfig) validate() error {
	if _, _, err := net.SplitHostPort(a.Addr); err != nil {
		return &ConfigError{Key: "admin.addr", Err: err}
	}
	if a.OperatorsFile == "" {
		return &ConfigError{Key: "admin.operators_file", Err: errRequired}
	}
	return nil
}

// adminCall is what an admin call's log line says; the handler fills in
// the target once it has decoded it.
type adminCall struct {
	operator, action, target string
}

type adminCallKey struct{}

// noteTarget records what an admin call acts on (a consent or bank id)
// for its log line; outside an admin call it does nothing.
func noteTarget(r *http.Request, target string) {
	if c, ok := r.Context().Value(adminCallKey{}).(*adminCall); ok {
		c.target = target
	}
}

// statusRecorder keeps the status a handler wrote, for the log line.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (streamed
// answers set their own deadlines).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// operator authenticates an admin call and logs it: refused calls at
// Warn with the caller's address, accepted ones at Info with the
// operator's name, the action, its target and the status answered.
func (n *Node) operator(action string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		name, err := "", ErrNoOperator
		if ok && n.deps.Operators != nil {
			name, err = n.deps.Operators.Operator(strings.TrimSpace(tok))
		}
		if err != nil {
			if !errors.Is(err, ErrNoOperator) {
				// The operators file is unreadable: refuse (fail closed)
				// and tell the operator why in the log, not the caller.
				n.log.Error("admin call refused: operators unreadable", "action", action, "err", err)
				writeError(w, http.StatusServiceUnavailable, credit.CodeUnavailable, "operator credentials cannot be checked now")
				return
			}
			msg := "an operator token is required (Authorization: Bearer <token>)"
			if ok {
				msg = "the operator token is not valid: no operator holds it (revoked, or never added)"
			}
			n.log.Warn("admin call refused", "action", action, "remote", r.RemoteAddr, "reason", "no valid operator token")
			writeError(w, http.StatusUnauthorized, credit.CodeUnauthorized, msg)
			return
		}
		call := &adminCall{operator: name, action: action, target: r.PathValue("id")}
		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		h(rec, r.WithContext(context.WithValue(r.Context(), adminCallKey{}, call)))
		n.log.Info("admin action", "operator", call.operator, "action", call.action, "target", call.target,
			"status", rec.status, "remote", r.RemoteAddr, "elapsed", time.Since(start).Round(time.Microsecond))
	}
}

// AdminHandler is the admin API. Every route but /healthz needs an
// operator's token.
func (n *Node) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/consents", n.operator("record_consent", n.handleRecordConsent))
	mux.HandleFunc("POST /v1/consents/{id}/revoke", n.operator("revoke_consent", n.handleRevokeConsent))
	mux.HandleFunc("POST /v1/banks", n.operator("register_bank", n.handleRegisterBank))
	mux.HandleFunc("POST /v1/banks/{id}/retire", n.operator("retire_bank", n.handleRetireBank))
	mux.HandleFunc("POST /v1/banks/{id}/key", n.operator("rotate_bank_key", n.handleRotateBankKey))
	mux.HandleFunc("GET /v1/receipts/{id}", n.operator("read_receipt", n.handleReceipt))
	mux.HandleFunc("POST /v1/authorities", n.operator("register_authority", n.handleRegisterAuthority))
	mux.HandleFunc("POST /v1/authorities/{id}/retire", n.operator("retire_authority", n.handleRetireAuthority))
	mux.HandleFunc("POST /v1/revocations", n.operator("revoke_certificate", n.handleRevokeCertificate))
	mux.HandleFunc("POST /v1/verify", n.operator("verify_store", n.handleVerify))
	mux.HandleFunc("GET /v1/backup", n.operator("backup", n.handleBackup))
	mux.HandleFunc("POST /v1/imports", n.operator("import", n.handleImport))
	mux.HandleFunc("GET /v1/imports", n.operator("list_imports", n.handleImports))
	mux.HandleFunc("GET /v1/imports/progress", n.operator("import_progress", n.handleImportProgress))
	mux.HandleFunc("GET /v1/receipts/export", n.operator("export_receipts", n.handleReceiptsExport))
	mux.HandleFunc("GET /v1/ledger/snapshot", n.operator("ledger_snapshot", n.handleLedgerSnapshot))
	mux.HandleFunc("POST /v1/regions/proposals", n.operator("propose_region", n.handleProposeRegion))
	mux.HandleFunc("POST /v1/regions/{id}/approve", n.operator("approve_region", n.handleApproveRegion))
	mux.HandleFunc("POST /v1/regions/{id}/retire", n.operator("retire_region", n.handleRetireRegion))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/", notFound)
	h := n.metrics.instrument("admin", mux)
	limited := http.MaxBytesHandler(h, n.cfg.HTTP.MaxBodyBytes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/imports" {
			// An import's body is a whole feed, streamed (handleImport).
			h.ServeHTTP(w, r)
			return
		}
		limited.ServeHTTP(w, r)
	})
}

// notFound answers a path no route serves with a JSON error, as every
// other refusal is.
func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, credit.CodeNotFound, "no such endpoint")
}

func (n *Node) startAdmin(context.Context) (func() error, error) {
	ln, err := net.Listen("tcp", n.cfg.Admin.Addr)
	if err != nil {
		return nil, fmt.Errorf("admin.addr: %w", err)
	}
	n.adminLn = ln
	// Commands given the node's config find the admin API here when
	// admin.addr leaves the port to the system (port 0).
	// A node without a data folder on disk (in memory, in tests) has none.
	addrFile := ""
	if st, err := os.Stat(n.cfg.DataDir); err == nil && st.IsDir() {
		addrFile = AdminAddrFile(n.cfg)
		if err := atomicfile.ReplaceBytes(addrFile, []byte(ln.Addr().String()+"\n"), 0o600); err != nil {
			n.log.Warn("admin address file not written: commands find this node only through admin.addr or --admin", "file", addrFile, "err", err)
			addrFile = ""
		}
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		n.log.Warn("admin API listens beyond this machine; keep it behind a firewall", "addr", ln.Addr().String())
	}
	stop := n.serveHTTP("admin", n.AdminHandler(), func(*http.Server) net.Listener { return ln })
	return func() error {
		err := stop()
		if addrFile != "" {
			os.Remove(addrFile)
		}
		return err
	}, nil
}

// AdminAddrFile is where a running node writes its admin API's address
// (DATA_DIR/admin.addr), removed when it stops.
func AdminAddrFile(cfg Config) string { return filepath.Join(cfg.DataDir, "admin.addr") }

// AdminAddr is the admin API's listening address once started.
func (n *Node) AdminAddr() string {
	if n.adminLn == nil {
		return ""
	}
	return n.adminLn.Addr().String()
}

// handleRetireBank retires one of this region's banks on the ledger; its
// queries are refused (bank_inactive) once the regions' views have it.
func (n *Node) handleRetireBank(w http.ResponseWriter, r *http.Request) {
	id := credit.BankID(r.PathValue("id"))
	if err := credit.ValidateBankID(id); err != nil {
		n.fail(w, credit.Refuse(credit.CodeInvalidQuery, "%w", err))
		return
	}
	if err := n.deps.Ledger.RetireBank(r.Context(), id); err != nil {
		n.fail(w, err)
		return
	}
	n.writeBank(w, r, id)
}

// BankKeyChange is the body of POST /v1/banks/{id}/key.
type BankKeyChange struct {
	PubKey []byte `json:"pub_key"`
}

// handleRotateBankKey changes the key of an active bank of this region:
// one ledger transaction. The ledger keeps the record's versions, so the
// audit checks each query against the key the bank had at its time; the
// nodes refuse the old key (bad_signature) once their views have the
// change.
func (n *Node) handleRotateBankKey(w http.ResponseWriter, r *http.Request) {
	id := credit.BankID(r.PathValue("id"))
	if err := credit.ValidateBankID(id); err != nil {
		n.fail(w, credit.Refuse(credit.CodeInvalidQuery, "%w", err))
		return
	}
	noteTarget(r, string(id))
	var req BankKeyChange
	if err := decode(r, &req); err != nil {
		n.fail(w, err)
		return
	}
	if len(req.PubKey) != ed25519.PublicKeySize {
		n.fail(w, credit.Refuse(credit.CodeInvalidQuery, "pub_key: %d bytes, want an ed25519 public key of %d", len(req.PubKey), ed25519.PublicKeySize))
		return
	}
	b, err := n.deps.Ledger.Bank(r.Context(), id)
	if err != nil {
		n.fail(w, fmt.Errorf("bank %s: %w", id, err))
		return
	}
	switch {
	case b.Region != n.cfg.Region:
		n.fail(w, credit.Refuse(credit.CodeWrongHomeRegion, "bank %s belongs to region %s: rotate its key at its home node", id, b.Region))
		return
	case b.Status != credit.StatusActive:
		n.fail(w, credit.Refuse(credit.CodeBankInactive, "bank %s is %s: register it again (ccnode bank register) instead", id, b.Status))
		return
	case bytes.Equal(b.PubKey, req.PubKey):
		n.fail(w, credit.Refuse(credit.CodeConflict, "bank %s already has this key", id))
		return
	}
	b.PubKey = req.PubKey
	if err := n.deps.Ledger.RegisterBank(r.Context(), b); err != nil {
		n.fail(w, err)
		return
	}
	n.writeBank(w, r, id)
}

// writeBank answers with the bank's record as the ledger now holds it,
// with the status and time the contract set (the request has neither).
func (n *Node) writeBank(w http.ResponseWriter, r *http.Request, id credit.BankID) {
	b, err := n.deps.Ledger.Bank(r.Context(), id)
	if err != nil {
		n.fail(w, fmt.Errorf("bank %s written, but reading it back: %w", id, err))
		return
	}
	writeJSON(w, http.StatusOK, b)
}
