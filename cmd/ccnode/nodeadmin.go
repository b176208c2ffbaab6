package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/node"
)

// Commands that work on a node's data (import, receipts export, audit
// snapshot; backup) run offline when the node is stopped and go through
// the running node's admin API when it runs: one process owns the Badger
// folders, the running node.

// nodeAdminFlags are the admin flags of such a command: where the admin
// API is when the config's admin.addr does not say (port 0), and the
// operator's token.
func nodeAdminFlags() []cli.Flag { return append([]cli.Flag(nil), adminFlags...) }

// ErrNodeUnreachable: the node's store is held by another process (a
// running node), and its admin API does not answer.
var ErrNodeUnreachable = errors.New("the node's store is in use by another process and its admin API does not answer")

// runningNodeAdmin reports whether the node that cfgPath configures is
// running — its record store's directory lock is held, or --admin, when
// given, answers /healthz — and if so returns a client of its admin API
// with the operator's token. It returns nil, nil when the node is not
// running: the command then works on the folders itself.
//
// The admin API is --admin when given, else the config's admin.addr, else
// the address the running node wrote in DATA_DIR/admin.addr. The
// token is --operator-token-file, else $CCNODE_OPERATOR_TOKEN, else the
// operator.token file `ccnode init` wrote in the data folder (or beside
// the config).
func runningNodeAdmin(c *cli.Context, cfgPath string, cfg node.Config) (*node.Client, error) {
	admin := c.String("admin")
	explicit := c.IsSet("admin")
	if !explicit {
		admin = "http://" + cfg.Admin.Addr
	}
	locked := storeLocked(node.StoreDir(cfg))
	if !locked && !explicit {
		return nil, nil
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	healthy := adminAnswers(contextOf(c), hc, admin)
	if !healthy && !explicit {
		// admin.addr with port 0: the running node wrote the address.
		if b, err := os.ReadFile(node.AdminAddrFile(cfg)); err == nil {
			if a := "http://" + strings.TrimSpace(string(b)); adminAnswers(contextOf(c), hc, a) {
				admin, healthy = a, true
			}
		}
	}
	if !healthy {
		if !locked {
			return nil, nil
		}
		hint := "give the admin API's address with --admin (ccnode run prints it)"
		if _, port, err := net.SplitHostPort(cfg.Admin.Addr); err == nil && port != "0" && !explicit {
			hint = "is the node still starting? otherwise give --admin"
		}
		return nil, fmt.Errorf("%w: %s is locked, and %s/healthz gives no answer; %s", ErrNodeUnreachable, node.StoreDir(cfg), admin, hint)
	}
	// init writes the token into the data folder (beside the config it
	// writes; init --config leaves the config where it is).
	tok, err := operatorToken(c, filepath.Join(cfg.DataDir, "operator.token"), filepath.Join(filepath.Dir(cfgPath), "operator.token"))
	if err != nil {
		return nil, err
	}
	cl := &node.Client{Admin: admin, OperatorToken: tok}
	if cl.OperatorToken == "" {
		return nil, fmt.Errorf("the node is running (admin API %s): its store is reached through the admin API, which needs an operator token: give --operator-token-file or set $%s", admin, operatorTokenEnv)
	}
	return cl, nil
}

func adminAnswers(ctx context.Context, hc *http.Client, admin string) bool {
	if !strings.Contains(admin, "://") {
		admin = "http://" + admin
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(admin, "/")+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
