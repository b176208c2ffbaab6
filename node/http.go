package node

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/node/reporthtml"
	"github.com/prdcredit/ccnode/store/receipts"
)

// OpenAPI is the bank API's OpenAPI 3 document, served at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Handler is the bank API. Bank queries and receipt reads are
// authenticated by the bank's signature; operator calls are on the admin
// API (AdminHandler), never here. Checkpoints and consistency proofs are
// public: they hold only sizes, hashes and the region's signature, which
// every member already reads on the ledger.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/query", n.handleQuery)
	mux.HandleFunc("GET /v1/receipts/{id}", n.handleBankReceipt)
	mux.HandleFunc("GET /v1/consents/{id}", n.handleConsentStatus)
	mux.HandleFunc("GET /v1/checkpoint", n.handleCheckpoint)
	mux.HandleFunc("GET /v1/proofs/consistency", n.handleConsistency)
	mux.HandleFunc("/", notFound)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", n.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(OpenAPI)
	})
	return http.MaxBytesHandler(n.metrics.instrument("bank", mux), n.cfg.HTTP.MaxBodyBytes)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code credit.Code, msg string) {
	writeJSON(w, status, APIError{Code: string(code), Message: msg})
}

// messageOf is what an error body says for people: a refusal's own
// message (its code is in the body's code), any other error's text.
func messageOf(err error) string {
	if r := credit.RefusalOf(err); r != nil {
		return r.Msg
	}
	return err.Error()
}

// statusOf maps an error to an HTTP status and a stable code: a refusal
// by its code, 4xx for the caller's fault, 503 when the node or ledger
// cannot serve now.
func statusOf(err error) (int, credit.Code) {
	var mbe *http.MaxBytesError
	switch r := credit.RefusalOf(err); {
	case r != nil:
		return r.Code.HTTPStatus(), r.Code
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, credit.CodeTooLarge
	case errors.Is(err, ErrNotReady):
		return http.StatusServiceUnavailable, credit.CodeUnavailable
	case errors.Is(err, receipts.ErrNotFound), errors.Is(err, network.ErrNotFound):
		return http.StatusNotFound, credit.CodeNotFound
	case errors.Is(err, network.ErrConflict):
		return http.StatusConflict, credit.CodeConflict
	case errors.Is(err, network.ErrDenied):
		return http.StatusForbidden, credit.CodeDenied
	case errors.Is(err, network.ErrInvalid):
		return http.StatusBadRequest, credit.CodeInvalidQuery
	case errors.Is(err, network.ErrUnavailable):
		return http.StatusServiceUnavailable, credit.CodeLedgerUnavailable
	}
	return http.StatusInternalServerError, credit.CodeInternal
}

func (n *Node) fail(w http.ResponseWriter, err error) {
	status, code := statusOf(err)
	if status >= 500 {
		n.log.Warn("request failed", "code", code, "err", err)
	}
	writeError(w, status, code, messageOf(err))
}

func decode(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeBody(b, v)
}

// decodeQuery is decode for a bank's query: one in its canonical layout,
// as bankclient sends it, is read by credit's one-pass decoder, which
// gives what encoding/json gives where both accept (p2p's FuzzDecodeJSON);
// anything else goes to encoding/json, which accepts it or says why not.
func decodeQuery(r *http.Request, q *credit.Query) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if c, ok := credit.DecodeCanonicalQuery(b); ok {
		*q = c
		return nil
	}
	return decodeBody(b, q)
}

// readBody reads a request's body whole (MaxBytesReader bounds it) so
// that one that is not UTF-8, as JSON must be (RFC 8259), is refused at
// memory speed: encoding/json would replace each bad byte with a
// three-byte rune, a costly path a flood of such bodies could keep every
// core on.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, credit.Refuse(credit.CodeInvalidQuery, "request body: %w", credit.BoundError(err))
	}
	if !utf8.Valid(b) {
		return nil, credit.Refuse(credit.CodeInvalidQuery, "request body: not UTF-8 (JSON must be)")
	}
	return b, nil
}

// decodeBody decodes one JSON value, refusing unknown fields and data
// after it.
func decodeBody(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return credit.Refuse(credit.CodeInvalidQuery, "request body: %w", credit.BoundError(err))
	}
	if dec.More() {
		return credit.Refuse(credit.CodeInvalidQuery, "request body: data after the JSON value")
	}
	return nil
}

func (n *Node) handleQuery(w http.ResponseWriter, r *http.Request) {
	var q credit.Query
	if err := decodeQuery(r, &q); err != nil {
		n.fail(w, err)
		return
	}
	c, err := n.Query(r.Context(), &q)
	if err != nil {
		n.fail(w, err)
		return
	}
	if wantsHTML(r) {
		// The printable page for people (node/reporthtml, the renderer
		// ccnode query --html uses too); errors stay JSON.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := reporthtml.Render(w, &q, c, reporthtml.LangOf(r), n.now()); err != nil {
			n.log.Debug("writing a report page", "err", err)
		}
		return
	}
	if err := writeConsolidated(w, c); err != nil {
		n.log.Debug("writing a consolidated report", "err", err)
	}
	release(c)
}

// wantsHTML: the client asked for text/html rather than JSON.
func wantsHTML(r *http.Request) bool { return asksFor(r, "text/html") }

func (n *Node) handleReceipt(w http.ResponseWriter, r *http.Request) {
	rp, err := n.Proof(r.Context(), r.PathValue("id"))
	if err != nil {
		n.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rp)
}

func (n *Node) handleRecordConsent(w http.ResponseWriter, r *http.Request) {
	var g credit.ConsentGrant
	if err := decode(r, &g); err != nil {
		n.fail(w, err)
		return
	}
	noteTarget(r, g.ID)
	g, c, err := n.RecordConsent(r.Context(), g)
	if err != nil {
		n.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, ConsentResponse{Consent: &g, Commitment: c, Status: c.StatusAt(n.now())})
}

func (n *Node) handleRevokeConsent(w http.ResponseWriter, r *http.Request) {
	c, err := n.RevokeConsent(r.Context(), r.PathValue("id"))
	if err != nil {
		n.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ConsentResponse{Commitment: c, Status: c.StatusAt(n.now())})
}

func (n *Node) handleConsentStatus(w http.ResponseWriter, r *http.Request) {
	c, st, err := n.ConsentStatus(r.Context(), r.PathValue("id"))
	if err != nil {
		n.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ConsentResponse{Commitment: c, Status: st})
}

func (n *Node) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	ac, ok, err := n.LatestCheckpoint()
	if err != nil {
		n.fail(w, err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, credit.CodeNotFound, "no checkpoint anchored yet")
		return
	}
	if wantsNote(r) {
		// The signed note alone, as C2SP checkpoint clients and witnesses
		// fetch it.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, ac.Note)
		return
	}
	writeJSON(w, http.StatusOK, ac)
}

// wantsNote: the client asked for text/plain rather than JSON.
func wantsNote(r *http.Request) bool { return asksFor(r, "text/plain") }

// asksFor: the request's Accept header names mediaType before JSON or a
// wildcard.
func asksFor(r *http.Request, mediaType string) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch mt = strings.TrimSpace(mt); mt {
		case "application/json", "*/*", "application/*":
			return false
		case mediaType:
			return true
		}
	}
	return false
}

// handleConsistency serves GET /v1/proofs/consistency?from=N&to=M.
func (n *Node) handleConsistency(w http.ResponseWriter, r *http.Request) {
	var sizes [2]uint64
	for i, name := range []string{"from", "to"} {
		v, err := strconv.ParseUint(r.URL.Query().Get(name), 10, 64)
		if err != nil {
			n.fail(w, credit.Refuse(credit.CodeInvalidQuery, "query parameter %s: want a tree size (a decimal integer)", name))
			return
		}
		sizes[i] = v
	}
	cp, err := n.Consistency(r.Context(), sizes[0], sizes[1])
	if err != nil {
		n.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

func (n *Node) handleReady(w http.ResponseWriter, r *http.Request) {
	if err := n.Ready(); err != nil {
		_, code := statusOf(err)
		writeError(w, http.StatusServiceUnavailable, code, messageOf(err))
		return
	}
	ready := map[string]string{"status": "ready"}
	if msg := n.emptyStore(r.Context()); msg != "" {
		ready["store"] = msg
	}
	if warn := n.diskWarning(); warn != "" {
		ready["warning"] = warn
	}
	writeJSON(w, http.StatusOK, ready)
}

func (n *Node) handleRegisterBank(w http.ResponseWriter, r *http.Request) {
	var b credit.BankMember
	if err := decode(r, &b); err != nil {
		n.fail(w, err)
		return
	}
	noteTarget(r, string(b.ID))
	if err := credit.ValidateBankID(b.ID); err != nil {
		n.fail(w, credit.Refuse(credit.CodeInvalidQuery, "%w", err))
		return
	}
	if b.Region == "" {
		b.Region = n.cfg.Region
	}
	if b.Status == "" {
		b.Status = credit.StatusActive
	}
	if err := n.deps.Ledger.RegisterBank(r.Context(), b); err != nil {
		n.fail(w, err)
		return
	}
	n.writeBank(w, r, b.ID)
}
