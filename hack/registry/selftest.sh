#!/usr/bin/env bash
# End-to-end check of the registry fixtures: build the images, start a
# registry with each kind of auth (none, basic, token), push every image to
# each (curl raw push, plus skopeo for the OCI ones), and check with curl that
# the registry serves them under the layout's digests and enforces auth.
#
# usage: hack/registry/selftest.sh [IMAGES_DIR]
#
#   IMAGES_DIR  where mkimages.sh builds (and caches) the layouts; default: a
#               temp dir, so a cold build every run
# Everything else lives in a temp dir that is removed, registries stopped, on
# exit. Prints one line per check and exits non-zero if any failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
kinds=(none basic token)
cleanup() {
	local kind
	for kind in "${kinds[@]}"; do
		if [[ -d $tmp/$kind ]]; then "$here/serve.sh" "$tmp/$kind" --stop; fi
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
images=${1:-$tmp/images}
creds=hull:hullpass

checks=0 failures=0
# check WHAT EXPECTED ACTUAL
check() {
	checks=$((checks + 1))
	if [[ $2 == "$3" ]]; then
		echo "ok   $1"
	else
		failures=$((failures + 1))
		echo "FAIL $1: expected '$2', got '$3'"
	fi
}

ACCEPT='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json,
 application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json'
ACCEPT=${ACCEPT//$'\n'/}

# token KIND REPO [CREDS]: a pull token from KIND's token server (anonymous
# without CREDS).
token() {
	local -a user=()
	if [[ $# -ge 3 ]]; then user=(-u "$3"); fi
	curl -sS "${user[@]}" "http://127.0.0.1:$(<"$tmp/$1/token.port")/token?service=hull-test-registry&scope=repository:$2:pull" |
		jq -r .token
}

# auth_for KIND REPO: curl arguments that authenticate as $creds.
auth_for() {
	case $1 in
	none) ;;
	basic) echo "-u"; echo "$creds" ;;
	token) echo "-H"; echo "Authorization: Bearer $(token token "$2" "$creds")" ;;
	esac
}

# manifest KIND REPO REF [CURL_ARGS...]: prints "HTTP_CODE DOCKER_CONTENT_DIGEST BODY_SHA256".
manifest() {
	local kind=$1 repo=$2 ref=$3 hdr=$tmp/headers body=$tmp/body code
	shift 3
	code=$(curl -sS -o "$body" -D "$hdr" -w '%{http_code}' -H "Accept: $ACCEPT" "$@" \
		"http://${addr[$kind]}/v2/$repo/manifests/$ref")
	echo "$code $(tr -d '\r' <"$hdr" | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: *//p')" \
		"sha256:$(sha256sum <"$body" | cut -d' ' -f1)"
}

# verify KIND REPO IMAGE: the pushed tag and every child manifest are served
# under their layout digests; every blob is there with the right size.
verify() {
	local kind=$1 repo=$2 img=$3 want got desc child digest size
	local -a auth
	mapfile -t auth < <(auth_for "$kind" "$repo")
	want=$(jq -r '.manifests[0].digest' "$images/$img/index.json")
	got=$(manifest "$kind" "$repo" latest "${auth[@]}")
	check "$kind $repo: manifest by tag" "200 $want $want" "$got"
	desc=$images/$img/blobs/sha256/${want#sha256:}
	while read -r child; do
		got=$(manifest "$kind" "$repo" "$child" "${auth[@]}")
		check "$kind $repo: child manifest $child" "200 $child $child" "$got"
		desc+=" $images/$img/blobs/sha256/${child#sha256:}"
	done < <(jq -r '.manifests[]?.digest' "$desc")
	# shellcheck disable=SC2086 # $desc is a list of manifest files
	while read -r digest size; do
		got=$(curl -sS -o /dev/null -I -w '%{http_code} %header{content-length}' "${auth[@]}" \
			"http://${addr[$kind]}/v2/$repo/blobs/$digest")
		check "$kind $repo: blob $digest" "200 $size" "$got"
	done < <(jq -r '(.config // empty), .layers[]? | "\(.digest) \(.size)"' $desc | sort -u)
}

start=$SECONDS
"$here/mkimages.sh" "$images"
echo "mkimages.sh: $((SECONDS - start)) s"
all=(small multiarch big zstd plain docker)

declare -A addr
for kind in "${kinds[@]}"; do
	addr[$kind]=$("$here/serve.sh" "$tmp/$kind" --auth "$kind")
	echo "registry $kind: ${addr[$kind]}"
done

for kind in "${kinds[@]}"; do
	for img in "${all[@]}"; do
		start=$SECONDS
		got=$("$here/push.sh" "$images/$img" "${addr[$kind]}/raw/$img")
		check "$kind raw/$img: push ($((SECONDS - start)) s)" "$(jq -r '.manifests[0].digest' "$images/$img/index.json")" "$got"
		verify "$kind" "raw/$img" "$img"
	done
	# skopeo as a second, independent client (it cannot read the docker layout).
	for img in small multiarch zstd; do
		"$here/push.sh" "$images/$img" "${addr[$kind]}/skopeo/$img" --skopeo >/dev/null 2>"$tmp/skopeo.log" ||
			cat "$tmp/skopeo.log" >&2
		verify "$kind" "skopeo/$img" "$img"
	done
done

# Where a test finds a blob's bytes to tamper with.
layer=$(jq -r '.layers[0].digest' "$images/small/blobs/sha256/$(jq -r '.manifests[0].digest' "$images/small/index.json" | cut -d: -f2)")
hex=${layer#sha256:}
data=$tmp/none/storage/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data
check "blob data file at storage/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data" "$layer" \
	"sha256:$(sha256sum <"$data" | cut -d' ' -f1)"

# Auth is enforced.
for kind in basic token; do
	got=$(manifest "$kind" raw/small latest)
	check "$kind: anonymous manifest GET is refused" 401 "${got%% *}"
done
got=$(manifest basic raw/small latest -u hull:wrong)
check "basic: wrong password is refused" 401 "${got%% *}"
got=$(manifest basic raw/small latest -u "$creds")
check "basic: right password works" 200 "${got%% *}"

tport=$(<"$tmp/token/token.port")
got=$(curl -sS -o /dev/null -w '%{http_code}' -u hull:wrong \
	"http://127.0.0.1:$tport/token?service=hull-test-registry&scope=repository:raw/small:pull")
check "token server: wrong password is refused" 401 "$got"
got=$(manifest token raw/small latest -H "Authorization: Bearer $(token token raw/small "$creds")")
check "token: token from basic creds grants pull" 200 "${got%% *}"
got=$(manifest token raw/small latest -H "Authorization: Bearer $(token token raw/small)")
check "token: anonymous token is refused" 401 "${got%% *}"
got=$(manifest token raw/big latest -H "Authorization: Bearer $(token token raw/small "$creds")")
check "token: token for another repo is refused" 401 "${got%% *}"
# A well-formed token whose signature belongs to another token.
good=$(token token raw/small "$creds") other=$(token token raw/big "$creds")
got=$(manifest token raw/small latest -H "Authorization: Bearer ${good%.*}.${other##*.}")
check "token: token with a wrong signature is refused" 401 "${got%% *}"

# Stopping really stops.
pids=$(cat "$tmp"/*/*.pid)
for kind in "${kinds[@]}"; do "$here/serve.sh" "$tmp/$kind" --stop; done
alive=0
for pid in $pids; do if kill -0 "$pid" 2>/dev/null; then alive=$((alive + 1)); fi; done
check "serve.sh --stop: all $(wc -w <<<"$pids") processes gone" 0 "$alive"

echo "$checks checks, $failures failed"
((failures == 0))
