#!/usr/bin/env bash
# Installs the peers that notify/'s tests run against, once, into a cache
# directory, and prints the path of each tool asked for. The tests call this
# script themselves when a tool is missing; CI may call it first to fail
# early:  scripts/test-tools.sh mailpit prism
#
#   mailpit  SMTP server with an HTTP API to read mail back (a Go module,
#            built from a throwaway module: `go install pkg@version` cannot
#            read the module's version list through the proxy)
#   prism    Stoplight's OpenAPI mock server (npm), serving
#            notify/testdata/twilio.yaml as a stand-in for Twilio
#   redocly  Redocly's OpenAPI linter (npm), which make lint runs over
#            api/openapi.yaml (config: redocly.yaml)
#   stripe-mock  Stripe's own mock of its API (a Go module), which
#            payments/stripetest starts for the Stripe provider's tests
#
# Cache: $PACKLINE_TOOLS_DIR, else $(go env GOCACHE)/packline-tools.
set -euo pipefail

MAILPIT_VERSION=v1.30.5
STRIPE_MOCK_VERSION=v0.203.0
PRISM_VERSION=5.14.2 # 5.15+ needs Node 24; this one runs on Node >= 18.20
REDOCLY_VERSION=2.77.0 # Node 20.19+ (20.x) or 22.12+

cache="${PACKLINE_TOOLS_DIR:-$(go env GOCACHE)/packline-tools}"
mkdir -p "$cache"

mailpit() {
	local bin="$cache/mailpit-$MAILPIT_VERSION/mailpit"
	if [ ! -x "$bin" ]; then
		local tmp
		tmp=$(mktemp -d)
		(
			cd "$tmp"
			go mod init packline-tools/mailpit >/dev/null 2>&1
			go get "github.com/axllent/mailpit@$MAILPIT_VERSION" >&2
			go build -buildvcs=false -o mailpit github.com/axllent/mailpit >&2
		)
		mkdir -p "$(dirname "$bin")"
		mv -f "$tmp/mailpit" "$bin" # atomic: a parallel run sees all or nothing
		rm -rf "$tmp"
	fi
	echo "$bin"
}

prism() { npm_tool prism @stoplight/prism-cli "$PRISM_VERSION" prism; }

# npm_tool NAME PACKAGE VERSION BIN: installs an npm package once into the
# cache and prints the path of its BIN.
npm_tool() {
	local dir="$cache/$1-$3"
	local bin="$dir/node_modules/.bin/$4"
	if [ ! -x "$bin" ]; then
		command -v npm >/dev/null || { echo "test-tools: npm is not installed (Debian: apt-get install nodejs npm)" >&2; exit 1; }
		local tmp
		tmp=$(mktemp -d "$cache/$1.XXXXXX")
		npm install --silent --no-audit --no-fund --prefix "$tmp" "$2@$3" >&2
		rm -rf "$dir"
		mv "$tmp" "$dir" || [ -x "$bin" ] # lost a race to a parallel run: fine
		rm -rf "$tmp"
	fi
	echo "$bin"
}

stripe_mock() {
	local dir="$cache/stripe-mock-$STRIPE_MOCK_VERSION"
	local bin="$dir/stripe-mock"
	if [ ! -x "$bin" ]; then
		local tmp
		tmp=$(mktemp -d "$cache/stripe-mock.XXXXXX")
		GOBIN="$tmp" go install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION" >&2
		mkdir -p "$dir"
		mv -f "$tmp/stripe-mock" "$bin" # atomic: a parallel run sees all or nothing
		rm -rf "$tmp"
	fi
	echo "$bin"
}

[ $# -gt 0 ] || set -- mailpit prism stripe-mock redocly
for tool in "$@"; do
	case "$tool" in
	mailpit) mailpit ;;
	prism) prism ;;
	redocly) npm_tool redocly @redocly/cli "$REDOCLY_VERSION" redocly ;;
	stripe-mock) stripe_mock ;;
	*) echo "test-tools: unknown tool $tool (mailpit, prism, stripe-mock, redocly)" >&2; exit 2 ;;
	esac
done
