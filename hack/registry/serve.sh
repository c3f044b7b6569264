#!/usr/bin/env bash
# Start a throw-away docker-registry (distribution 2.x) on 127.0.0.1, for
# image-puller tests and benchmarks.
#
# usage: hack/registry/serve.sh DIR [--auth none|basic|token] [--user USER:PASS]
#        hack/registry/serve.sh DIR --stop
#
#   DIR            state directory (created): config.yml, storage/, registry.log,
#                  registry.pid, address; token auth adds key.pem, cert.pem,
#                  users, token.log, token.pid, token.port
#   --auth none    no authentication (default)
#   --auth basic   htpasswd (bcrypt) basic auth
#   --auth token   bearer tokens from token-server.py (started here; it also
#                  knows reader:readerpass, granted pull only, and takes the
#                  identity token hull-test-identity-token of the --user
#                  account by the OAuth2 refresh-token grant), realm
#                  http://127.0.0.1:TPORT/token, service hull-test-registry,
#                  issuer hull-test-issuer
#   --user U:P     the one account for basic/token auth (default hull:hullpass)
#   --stop         kill the processes in DIR/*.pid and wait for them to exit
#
# Prints the registry address (127.0.0.1:PORT) on stdout and writes it to
# DIR/address. Blob data lives in
# DIR/storage/docker/registry/v2/blobs/sha256/<first 2 hex>/<hex>/data.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "$prog: $*" >&2; exit 1; }
usage() { die "usage: $prog DIR [--auth none|basic|token] [--user USER:PASS] | DIR --stop"; }

[[ $# -ge 1 && $1 != -* ]] || usage
dir=$1
shift
auth=none creds=hull:hullpass stop=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--auth) [[ $# -ge 2 ]] || usage; auth=$2; shift 2 ;;
	--user) [[ $# -ge 2 ]] || usage; creds=$2; shift 2 ;;
	--stop) stop=1; shift ;;
	*) usage ;;
	esac
done
case $auth in none | basic | token) ;; *) usage ;; esac
[[ $creds == *:* ]] || die "--user wants USER:PASS"

# stop_pid FILE: TERM the process, give it 10 s, then KILL.
stop_pid() {
	local pid i
	pid=$(<"$1")
	rm -f "$1"
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

stop_all() {
	local f
	for f in "$dir"/*.pid; do
		if [[ -e $f ]]; then stop_pid "$f"; fi
	done
}

if ((stop)); then
	stop_all
	exit 0
fi

for tool in docker-registry curl python3; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
[[ -e $dir/registry.pid ]] && die "$dir/registry.pid exists: already running? ($prog $dir --stop)"
mkdir -p "$dir/storage"
dir=$(cd "$dir" && pwd) # the registry config wants absolute paths

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# If anything below fails, do not leave half a setup running.
trap 'if (($?)); then stop_all; fi' EXIT

port=$(free_port)
auth_yaml=''
case $auth in
basic)
	command -v htpasswd >/dev/null || die "htpasswd not found (apt-get install apache2-utils)"
	htpasswd -Bbn "${creds%%:*}" "${creds#*:}" >"$dir/htpasswd"
	auth_yaml="auth:
  htpasswd:
    realm: hull-test-registry
    path: $dir/htpasswd"
	;;
token)
	command -v openssl >/dev/null || die "openssl not found"
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=hull-test-token \
		-keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
	# A second account that may pull but not push.
	printf '%s\n%s\n' "$creds" "reader:readerpass" >"$dir/users"
	rm -f "$dir/token.port"
	# Daemons get their own stdio: a caller doing addr=$(serve.sh ...) would
	# otherwise wait for them to close its pipe.
	python3 "$here/token-server.py" --key "$dir/key.pem" --cert "$dir/cert.pem" \
		--issuer hull-test-issuer --service hull-test-registry --users "$dir/users" --read-only reader \
		--refresh-token "hull-test-identity-token=${creds%%:*}" \
		--port-file "$dir/token.port" </dev/null >"$dir/token.log" 2>&1 &
	echo $! >"$dir/token.pid"
	for ((i = 0; i < 200; i++)); do
		[[ -s $dir/token.port ]] && break
		kill -0 "$(<"$dir/token.pid")" 2>/dev/null || { cat "$dir/token.log" >&2; die "token server died"; }
		sleep 0.1
	done
	[[ -s $dir/token.port ]] || die "token server did not start (see $dir/token.log)"
	auth_yaml="auth:
  token:
    realm: http://127.0.0.1:$(<"$dir/token.port")/token
    service: hull-test-registry
    issuer: hull-test-issuer
    rootcertbundle: $dir/cert.pem"
	;;
esac

cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: hull-test-secret
health:
  storagedriver:
    enabled: false
$auth_yaml
EOF

docker-registry serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 &
echo $! >"$dir/registry.pid"

# Up when /v2/ answers at all: 200 without auth, 401 with.
for ((i = 0; ; i++)); do
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
	[[ $code == 200 || $code == 401 ]] && break
	kill -0 "$(<"$dir/registry.pid")" 2>/dev/null || { cat "$dir/registry.log" >&2; die "registry died"; }
	((i < 200)) || die "registry not answering on 127.0.0.1:$port after 20 s (see $dir/registry.log)"
	sleep 0.1
done

echo "127.0.0.1:$port" >"$dir/address"
echo "127.0.0.1:$port"
