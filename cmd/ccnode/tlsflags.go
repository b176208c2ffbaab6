package main

import (
	"net/http"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/bankclient"
)

// tlsFlags are how a command reaches a node's bank API over TLS
// (http.tls_cert_file on the node; https:// in --node).
var tlsFlags = []cli.Flag{
	&cli.StringFlag{Name: "ca-file", Category: catNetwork, EnvVars: []string{"CCNODE_CA_FILE"},
		Usage: "PEM certificates to trust for the node's TLS certificate instead of the system's (such as the tls.crt of 'ccnode init --tls')"},
	&cli.StringFlag{Name: "client-cert", Category: catNetwork, EnvVars: []string{"CCNODE_CLIENT_CERT"},
		Usage: "PEM client certificate, for a node with http.client_ca_file"},
	&cli.StringFlag{Name: "client-key", Category: catNetwork, EnvVars: []string{"CCNODE_CLIENT_KEY"},
		Usage: "the client certificate's key (PEM)"},
}

// tlsHTTPClient is the HTTP client the TLS flags ask for; nil (the
// default client) when none is set.
func tlsHTTPClient(c *cli.Context) (*http.Client, error) {
	if c.String("ca-file") == "" && c.String("client-cert") == "" && c.String("client-key") == "" {
		return nil, nil
	}
	tc, err := bankclient.TLSConfig(c.String("ca-file"), c.String("client-cert"), c.String("client-key"))
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}}, nil
}

// nodeClient is a bank API client of --node with the TLS flags.
func nodeClient(c *cli.Context) (*node.Client, error) {
	hc, err := tlsHTTPClient(c)
	if err != nil {
		return nil, err
	}
	return &node.Client{Base: c.String("node"), HTTP: hc}, nil
}
