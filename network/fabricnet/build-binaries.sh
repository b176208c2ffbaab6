#!/usr/bin/env bash
# build-binaries.sh [DIR] — build Hyperledger Fabric's peer, orderer, cryptogen,
# configtxgen, configtxlator and osnadmin from the Go module proxy at the version pinned in
# tools/go.mod, unless DIR already holds them for that pin. Prints DIR.
#
# DIR defaults to $CCNODE_FABRIC_BIN, else <repo>/.cache/fabric/<pin>/bin — the
# folder fabricnet.EnsureBinaries, `ccnode fabric up` and the Fabric test
# suites look in. The folder is named after the pin, so changing the pin in
# tools/go.mod builds afresh and an unchanged pin never rebuilds.
#
# Cold (empty module and build caches) on 2 cores this takes several minutes:
# about 3 to download, then the compile.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# CCNODE_FABRIC_TOOLS names another tools module (fabricnet.EnsureBinaries
# writes one when it runs outside this repository).
tools="${CCNODE_FABRIC_TOOLS:-$here/tools}"
repo="$(cd "$here/../.." && pwd)"
pin="$(awk '$1 == "require" && $2 == "github.com/hyperledger/fabric" { print $3 }' "$tools/go.mod")"
if [ -z "$pin" ]; then
	echo "build-binaries.sh: no github.com/hyperledger/fabric pin in $tools/go.mod" >&2
	exit 1
fi
dir="${1:-${CCNODE_FABRIC_BIN:-$repo/.cache/fabric/$pin/bin}}"
bins=(peer orderer cryptogen configtxgen configtxlator osnadmin)

have() {
	for b in "${bins[@]}"; do [ -x "$dir/$b" ] || return 1; done
	# A folder built for another pin (only possible when DIR is chosen by
	# hand) is rebuilt; one without a stamp was filled by someone else: keep it.
	[ ! -f "$dir/.pin" ] || [ "$(cat "$dir/.pin")" = "$pin" ]
}

mkdir -p "$(dirname "$dir")"
# One build at a time per folder: parallel test binaries may all ask for it.
exec 9>"$dir.lock"
if command -v flock >/dev/null; then flock 9; fi

if have; then
	echo "$dir"
	exit 0
fi

echo "building Fabric $pin into $dir" >&2
start=$SECONDS
tmp="$(mktemp -d "$dir.tmp-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cd "$tools"
# The tools module is a module of its own: whatever -mod the caller's GOFLAGS
# say (vendor, readonly) does not apply to it. VCS stamping is off because
# the binaries' provenance is the pin, not this repository's commit.
export GOFLAGS="-mod=mod -buildvcs=false"
# tools/go.sum is committed, so the build downloads only what the six
# commands need; a tools module without one (written by EnsureBinaries
# outside the repository) is tidied first.
if [ ! -f go.sum ]; then go mod tidy; fi
pkgs=()
for b in "${bins[@]}"; do pkgs+=("github.com/hyperledger/fabric/cmd/$b"); done
go build -trimpath -o "$tmp/" "${pkgs[@]}"
# The sample core.yaml and orderer.yaml travel with the binaries, so a network
# can start even after the module cache is cleaned.
fabricsrc="$(go list -m -f '{{.Dir}}' github.com/hyperledger/fabric)"
mkdir -p "$tmp/sampleconfig"
cp "$fabricsrc/sampleconfig/core.yaml" "$fabricsrc/sampleconfig/orderer.yaml" "$tmp/sampleconfig/"
chmod -R u+w "$tmp/sampleconfig"
echo "$pin" >"$tmp/.pin"
mkdir -p "$dir"
for f in "${bins[@]}" sampleconfig .pin; do
	rm -rf "${dir:?}/$f"
	mv "$tmp/$f" "$dir/$f"
done
echo "built Fabric $pin in $((SECONDS - start))s" >&2
echo "$dir"
