#!/usr/bin/env bash
# Builds Hyperledger Fabric's peer, orderer, cryptogen, configtxgen and
# osnadmin from the Go module proxy into the cache folder that the local
# network and the Fabric test suites use, unless they are already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go run ./cmd/ccnode fabric binaries
