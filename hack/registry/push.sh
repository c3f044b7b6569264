#!/usr/bin/env bash
# Push an OCI image layout (all platforms) to a plain-HTTP registry, keeping
# every digest: blobs and manifests are uploaded byte for byte.
#
# usage: hack/registry/push.sh LAYOUT_DIR ADDRESS/REPO[:TAG] [--user USER:PASS] [--skopeo]
#
#   LAYOUT_DIR   OCI layout; the image is the index.json entry annotated
#                org.opencontainers.image.ref.name=latest (else the first)
#   ADDRESS      host:port of the registry (http only); TAG defaults to latest
#   --user U:P   credentials, used if the registry asks for them (default
#                hull:hullpass, serve.sh's default); basic and token auth
#                (token fetched from the realm in WWW-Authenticate) both work
#   --skopeo     push with `skopeo copy --all --preserve-digests` instead of
#                curl; skopeo 1.9 cannot read Docker-media-type manifests
#                from an OCI layout, so this fails for the "docker" image
#
# Prints the pushed top-level manifest digest on stdout.
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }
usage() { die "usage: $prog LAYOUT_DIR ADDRESS/REPO[:TAG] [--user USER:PASS] [--skopeo]"; }

[[ $# -ge 2 ]] || usage
layout=${1%/} ref=$2
shift 2
creds=hull:hullpass use_skopeo=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--user) [[ $# -ge 2 ]] || usage; creds=$2; shift 2 ;;
	--skopeo) use_skopeo=1; shift ;;
	*) usage ;;
	esac
done
[[ -f $layout/index.json ]] || die "$layout: not an OCI layout (no index.json)"
[[ $ref == */* ]] || usage
addr=${ref%%/*} name=${ref#*/}
repo=${name%%:*} tag=latest
if [[ $name == *:* ]]; then tag=${name#*:}; fi

top=$(jq -ce '[.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "latest")]
	+ .manifests | .[0] // empty | {mediaType, digest, size}' "$layout/index.json") ||
	die "$layout/index.json: no manifests"

if ((use_skopeo)); then
	skopeo copy --all --preserve-digests --dest-tls-verify=false --dest-creds "$creds" \
		"oci:$layout:latest" "docker://$addr/$repo:$tag" >&2
	jq -r .digest <<<"$top"
	exit 0
fi

base=http://$addr/v2/$repo
blobfile() { echo "$layout/blobs/${1%%:*}/${1#*:}"; }

# param NAME: a quoted parameter of the WWW-Authenticate challenge.
param() { sed -n "s/.*$1=\"\([^\"]*\)\".*/\1/p" <<<"$challenge"; }

# Work out what the registry wants from its /v2/ challenge.
authn=()
challenge=$(curl -sS -o /dev/null -D - "http://$addr/v2/" | tr -d '\r' |
	sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: *//p')
case $challenge in
'') ;;
Basic*) authn=(-u "$creds") ;;
Bearer*)
	realm=$(param realm) service=$(param service)
	token=$(curl -sS --fail-with-body -u "$creds" -G --data-urlencode "service=$service" \
		--data-urlencode "scope=repository:$repo:pull,push" "$realm" | jq -re '.token // .access_token') ||
		die "could not get a token from $realm"
	authn=(-H "Authorization: Bearer $token")
	;;
*) die "unsupported auth challenge: $challenge" ;;
esac
code=$(curl -sS -o /dev/null -w '%{http_code}' "${authn[@]}" "http://$addr/v2/")
[[ $code == 200 ]] || die "registry $addr answers /v2/ with HTTP $code (wrong --user?)"

# rcurl ARGS...: authenticated curl that fails (showing the body) on HTTP errors.
rcurl() { curl -sS --fail-with-body "${authn[@]}" "$@"; }

push_blob() { # DIGEST
	local file loc
	file=$(blobfile "$1")
	[[ -f $file ]] || die "blob $1 missing from $layout"
	if rcurl -o /dev/null -I "$base/blobs/$1" 2>/dev/null; then return; fi
	loc=$(rcurl -o /dev/null -D - -X POST "$base/blobs/uploads/" | tr -d '\r' |
		sed -n 's/^[Ll]ocation: *//p')
	[[ -n $loc ]] || die "no upload location for $1"
	if [[ $loc == /* ]]; then loc=http://$addr$loc; fi # may be relative
	if [[ $loc == *\?* ]]; then loc+="&"; else loc+="?"; fi
	# -T streams the file (the big layers are tens of MB); monolithic upload.
	rcurl -o /dev/null -T "$file" -H 'Content-Type: application/octet-stream' "${loc}digest=$1"
}

put_manifest() { # DESCRIPTOR_JSON REFERENCE
	local mt digest
	mt=$(jq -r .mediaType <<<"$1") digest=$(jq -r .digest <<<"$1")
	rcurl -o /dev/null -X PUT -H "Content-Type: $mt" --data-binary "@$(blobfile "$digest")" \
		"$base/manifests/$2"
}

# push_tree DESCRIPTOR_JSON REFERENCE: everything a manifest references goes
# first, because the registry refuses manifests with missing dependencies.
push_tree() {
	local desc=$1 file child digest
	file=$(blobfile "$(jq -r .digest <<<"$desc")")
	case $(jq -r .mediaType <<<"$desc") in
	application/vnd.oci.image.index.v1+json | application/vnd.docker.distribution.manifest.list.v2+json)
		while read -r child; do
			push_tree "$child" "$(jq -r .digest <<<"$child")"
		done < <(jq -c '.manifests[] | {mediaType, digest, size}' "$file")
		;;
	*)
		while read -r digest; do push_blob "$digest"; done < <(jq -r '.config.digest, .layers[].digest' "$file")
		;;
	esac
	put_manifest "$desc" "$2"
}

push_tree "$top" "$tag"
jq -r .digest <<<"$top"
