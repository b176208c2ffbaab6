package chaincode

import (
	"fmt"
	"os"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// ServeFromEnv runs the contract as chaincode-as-a-service until the
// process ends: the peer connects to it over gRPC instead of launching it.
// Both chaincode/server and the hidden `ccnode chaincode serve` run it, so
// an installed ccnode binary can serve a local network's contract.
//
// Environment:
//
//	CHAINCODE_SERVER_ADDRESS  listen address, such as 127.0.0.1:9999 (required)
//	CHAINCODE_ID              the package id from `peer lifecycle chaincode install`,
//	                          label:sha256 (required)
//	CHAINCODE_TLS_DISABLED    "true" to serve without TLS (default: TLS, which
//	                          needs the next two)
//	CHAINCODE_TLS_KEY         PEM file of the server's TLS key
//	CHAINCODE_TLS_CERT        PEM file of the server's TLS certificate
//	CHAINCODE_CLIENT_CA_CERT  PEM file of the CA that signs peers' client
//	                          certificates; when set, peers must present one
func ServeFromEnv() error {
	addr, id := os.Getenv("CHAINCODE_SERVER_ADDRESS"), os.Getenv("CHAINCODE_ID")
	if addr == "" || id == "" {
		return fmt.Errorf("CHAINCODE_SERVER_ADDRESS and CHAINCODE_ID must be set")
	}
	tls, err := TLSFromEnv()
	if err != nil {
		return err
	}
	cc, err := contractapi.NewChaincode(NewFabricContract())
	if err != nil {
		return fmt.Errorf("building chaincode: %w", err)
	}
	srv := &shim.ChaincodeServer{CCID: id, Address: addr, CC: cc, TLSProps: tls}
	return srv.Start()
}

// TLSFromEnv reads the chaincode server's TLS settings (see ServeFromEnv).
func TLSFromEnv() (shim.TLSProperties, error) {
	if os.Getenv("CHAINCODE_TLS_DISABLED") == "true" {
		return shim.TLSProperties{Disabled: true}, nil
	}
	read := func(env string, required bool) ([]byte, error) {
		path := os.Getenv(env)
		if path == "" {
			if required {
				return nil, fmt.Errorf("%s must name a PEM file (or set CHAINCODE_TLS_DISABLED=true)", env)
			}
			return nil, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", env, err)
		}
		return b, nil
	}
	key, err := read("CHAINCODE_TLS_KEY", true)
	if err != nil {
		return shim.TLSProperties{}, err
	}
	cert, err := read("CHAINCODE_TLS_CERT", true)
	if err != nil {
		return shim.TLSProperties{}, err
	}
	ca, err := read("CHAINCODE_CLIENT_CA_CERT", false)
	if err != nil {
		return shim.TLSProperties{}, err
	}
	return shim.TLSProperties{Key: key, Cert: cert, ClientCACerts: ca}, nil
}
