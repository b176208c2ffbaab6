// Command server runs the ccnode contract as chaincode-as-a-service: the
// peer connects to it over gRPC instead of launching it. Its environment
// is chaincode.ServeFromEnv's; an installed ccnode binary serves the same
// as the hidden `ccnode chaincode serve`.
package main

import (
	"fmt"
	"os"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"

	"github.com/prdcredit/ccnode/chaincode"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ccnode chaincode server:", err)
		os.Exit(1)
	}
}

func run() error { return chaincode.ServeFromEnv() }

func tlsProperties() (shim.TLSProperties, error) { return chaincode.TLSFromEnv() }
