#!/usr/bin/env bash
# Build deterministic OCI image layouts from busybox-static, as fixtures for the
# image puller's integration tests and benchmarks.
#
# usage: hack/registry/mkimages.sh OUTDIR
#
# Creates one OCI layout (oci-layout, index.json, blobs/sha256/...) per image
# under OUTDIR, each tagged "latest" (org.opencontainers.image.ref.name):
#   small      one gzip layer: bin/busybox (+ sh ls cat true echo links), etc/passwd
#   multiarch  image index: linux/amd64 (= small) and linux/arm64/v8 (other
#              config + one extra tiny layer)
#   big        5 gzip layers, ~200 MB uncompressed: busybox + 50 MB random,
#              40 MB random, 30 MB random, 40 MB of zeros, 4000 small text files
#   zstd       the small rootfs as one tar+zstd layer
#   plain      the small rootfs as one uncompressed tar layer
#   docker     the small image with Docker schema2 media types
# Output is byte-for-byte reproducible (fixed mtimes/owners, sorted tar entries,
# gzip -n). Cached: nothing is done if OUTDIR/.stamp holds this script's sha256;
# otherwise OUTDIR is rebuilt in a temp dir next to it and swapped in.
# Prints "NAME MANIFEST_DIGEST TOTAL_BLOB_BYTES" per image.
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }

[[ $# -eq 1 && $1 != -* ]] || die "usage: $prog OUTDIR"
out=${1%/}
busybox=${BUSYBOX:-/bin/busybox}
[[ -x $busybox ]] || die "$busybox not found (apt-get install busybox-static)"
for tool in tar gzip zstd sha256sum jq openssl; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

stamp=$(sha256sum <"${BASH_SOURCE[0]}" | cut -d' ' -f1)
if [[ -f $out/.stamp && $(<"$out/.stamp") == "$stamp" ]]; then
	exit 0
fi

# OUTDIR gets replaced wholesale, so refuse to clobber anything not built here.
if [[ -e $out && ! -f $out/.stamp ]] && [[ -n $(ls -A "$out" 2>/dev/null || echo x) ]]; then
	die "$out exists and was not made by $prog; refusing to replace it"
fi
mkdir -p "$(dirname "$out")"
# Build next to OUTDIR (same filesystem) so the final rename is atomic-ish.
tmp=$(mktemp -d "$out.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp" # mktemp's 0700 would become OUTDIR's mode
work=$tmp/.work # scratch: rootfs trees and uncompressed tars
mkdir -p "$work"

OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
OCI_INDEX=application/vnd.oci.image.index.v1+json
OCI_CONFIG=application/vnd.oci.image.config.v1+json
DOCKER_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
DOCKER_CONFIG=application/vnd.docker.container.image.v1+json

# Everything that could leak the build host or time into a tar is pinned.
tarflags=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu)

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Normalise modes so the umask of whoever runs this does not change digests.
fixmodes() {
	find "$1" -type d -exec chmod 0755 {} +
	find "$1" -type f -exec chmod 0644 {} +
	if [[ -f $1/bin/busybox ]]; then chmod 0755 "$1/bin/busybox"; fi
}

# busybox_root DIR: the minimal runnable rootfs shared by most images.
busybox_root() {
	mkdir -p "$1/bin" "$1/etc"
	cp "$busybox" "$1/bin/busybox"
	local applet
	for applet in sh ls cat true echo; do ln -s busybox "$1/bin/$applet"; done
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$1/etc/passwd"
}

# pack ROOT NAME COMP: tar ROOT into $work/NAME.tar and compress it
# (gzip|zstd|none) to $work/NAME.blob; $work/NAME.meta gets "COMP DIFF_ID".
pack() {
	local root=$1 name=$2 comp=$3 top
	fixmodes "$root"
	# Top-level names are passed sorted and without a "./" prefix.
	mapfile -t top < <(cd "$root" && LC_ALL=C ls -A)
	tar -C "$root" "${tarflags[@]}" -cf "$work/$name.tar" -- "${top[@]}"
	case $comp in
	gzip) gzip -n -c "$work/$name.tar" >"$work/$name.blob" ;;
	zstd) zstd -q --single-thread -c "$work/$name.tar" >"$work/$name.blob" ;;
	none) cp "$work/$name.tar" "$work/$name.blob" ;;
	esac
	echo "$comp sha256:$(sha "$work/$name.tar")" >"$work/$name.meta"
	rm -f "$work/$name.tar"
}

# add_blob LAYOUT FILE: copy FILE into the layout; print "sha256:HEX SIZE".
add_blob() {
	local hex
	hex=$(sha "$2")
	mkdir -p "$1/blobs/sha256"
	cp "$2" "$1/blobs/sha256/$hex"
	echo "sha256:$hex $(stat -c %s "$2")"
}

# add_json LAYOUT MEDIATYPE JSON: store JSON as a blob; print its descriptor.
add_json() {
	local f=$work/json.$$ digest size
	printf '%s' "$3" >"$f"
	read -r digest size < <(add_blob "$1" "$f")
	rm -f "$f"
	jq -cnj --arg mt "$2" --arg d "$digest" --argjson s "$size" \
		'{mediaType:$mt,digest:$d,size:$s}'
}

layer_mediatype() { # FLAVOR COMP
	case $1/$2 in
	oci/gzip) echo application/vnd.oci.image.layer.v1.tar+gzip ;;
	oci/zstd) echo application/vnd.oci.image.layer.v1.tar+zstd ;;
	oci/none) echo application/vnd.oci.image.layer.v1.tar ;;
	docker/gzip) echo application/vnd.docker.image.rootfs.diff.tar.gzip ;;
	docker/none) echo application/vnd.docker.image.rootfs.diff.tar ;;
	*) die "no $1 media type for $2 layers" ;;
	esac
}

# mkimage LAYOUT FLAVOR ARCH VARIANT LAYER...: add config, layers and manifest
# blobs (FLAVOR oci|docker; LAYERs are names given to pack); print the
# manifest's descriptor.
mkimage() {
	local layout=$1 flavor=$2 arch=$3 variant=$4 name comp diff digest size
	shift 4
	local -a descs=() diffs=()
	for name in "$@"; do
		read -r comp diff <"$work/$name.meta"
		read -r digest size < <(add_blob "$layout" "$work/$name.blob")
		descs+=("$(jq -cn --arg mt "$(layer_mediatype "$flavor" "$comp")" \
			--arg d "$digest" --argjson s "$size" '{mediaType:$mt,digest:$d,size:$s}')")
		diffs+=("$diff")
	done
	local config
	config=$(jq -cnj --arg arch "$arch" --arg variant "$variant" \
		--argjson diffs "$(printf '%s\n' "${diffs[@]}" | jq -R . | jq -cs .)" '
		{created: "1970-01-01T00:00:00Z", architecture: $arch}
		+ (if $variant != "" then {variant: $variant} else {} end)
		+ {os: "linux",
		   config: {Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
		            Cmd: ["/bin/sh"]},
		   rootfs: {type: "layers", diff_ids: $diffs}}')
	local manifest_mt=$OCI_MANIFEST config_mt=$OCI_CONFIG
	if [[ $flavor == docker ]]; then manifest_mt=$DOCKER_MANIFEST config_mt=$DOCKER_CONFIG; fi
	local config_desc manifest
	config_desc=$(add_json "$layout" "$config_mt" "$config")
	manifest=$(jq -cnj --arg mt "$manifest_mt" --argjson config "$config_desc" \
		--argjson layers "$(printf '%s\n' "${descs[@]}" | jq -cs .)" \
		'{schemaVersion: 2, mediaType: $mt, config: $config, layers: $layers}')
	add_json "$layout" "$manifest_mt" "$manifest"
}

# finish LAYOUT NAME DESCRIPTOR: write oci-layout + index.json tagging
# DESCRIPTOR as "latest", and print the summary line.
finish() {
	local layout=$1 desc=$3
	printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
	jq -cnj --argjson d "$desc" '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
		manifests: [$d + {annotations: {"org.opencontainers.image.ref.name": "latest"}}]}' \
		>"$layout/index.json"
	local bytes
	bytes=$(find "$layout/blobs" -type f -printf '%s\n' | awk '{n += $1} END {print n}')
	printf '%-10s %s %s\n' "$2" "$(jq -r .digest <<<"$desc")" "$bytes"
}

# Deterministic incompressible bytes: AES-CTR keystream under a fixed key.
random_bytes() { # SIZE KEY(32 hex) OUTFILE
	head -c "$1" /dev/zero |
		openssl enc -aes-128-ctr -nosalt -K "$2" -iv 000102030405060708090a0b0c0d0e0f >"$3"
}

# --- layers -----------------------------------------------------------------
busybox_root "$work/base"
pack "$work/base" base-gzip gzip
pack "$work/base" base-zstd zstd
pack "$work/base" base-none none

mkdir -p "$work/arm64/etc"
echo arm64 >"$work/arm64/etc/hull-arch"
pack "$work/arm64" arm64-extra gzip

busybox_root "$work/big1"
mkdir -p "$work/big1/data" "$work/big2/data" "$work/big3/data" "$work/big4/data" "$work/big5/data/many"
random_bytes 50000000 a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1 "$work/big1/data/random1"
pack "$work/big1" big1 gzip
random_bytes 40000000 b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2 "$work/big2/data/random2"
pack "$work/big2" big2 gzip
random_bytes 30000000 c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3 "$work/big3/data/random3"
pack "$work/big3" big3 gzip
head -c 40000000 /dev/zero >"$work/big4/data/zeros"
pack "$work/big4" big4 gzip
# Many small compressible files (4000 x 10000 bytes of decimal numbers), to
# exercise per-entry overhead in the unpacker.
seq 5000000 9999999 | split -b 10000 -d -a 4 - "$work/big5/data/many/f"
pack "$work/big5" big5 gzip

# --- layouts ----------------------------------------------------------------
mkdir -p "$tmp/small" "$tmp/multiarch" "$tmp/big" "$tmp/zstd" "$tmp/plain" "$tmp/docker"

finish "$tmp/small" small "$(mkimage "$tmp/small" oci amd64 '' base-gzip)"

amd64=$(mkimage "$tmp/multiarch" oci amd64 '' base-gzip)
arm64=$(mkimage "$tmp/multiarch" oci arm64 v8 base-gzip arm64-extra)
index=$(jq -cnj --argjson a "$amd64" --argjson b "$arm64" '{schemaVersion: 2,
	mediaType: "application/vnd.oci.image.index.v1+json",
	manifests: [$a + {platform: {architecture: "amd64", os: "linux"}},
	            $b + {platform: {architecture: "arm64", os: "linux", variant: "v8"}}]}')
finish "$tmp/multiarch" multiarch "$(add_json "$tmp/multiarch" "$OCI_INDEX" "$index")"

finish "$tmp/big" big "$(mkimage "$tmp/big" oci amd64 '' big1 big2 big3 big4 big5)"
finish "$tmp/zstd" zstd "$(mkimage "$tmp/zstd" oci amd64 '' base-zstd)"
finish "$tmp/plain" plain "$(mkimage "$tmp/plain" oci amd64 '' base-none)"
finish "$tmp/docker" docker "$(mkimage "$tmp/docker" docker amd64 '' base-gzip)"

rm -rf "$work"
echo "$stamp" >"$tmp/.stamp"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
