#!/usr/bin/env bash
# Build a minimal OCI bundle (busybox-static rootfs + config.json) for tests,
# demos and benchmarks.
#
# usage: hack/mkbundle.sh [OPTIONS] DIR [RUNTIME] [-- CMD [ARG...]]
#
#   DIR        bundle directory (created if missing; must be empty unless --force)
#   RUNTIME    runtime whose `spec` writes config.json: "hull" (default), "runc",
#              "crun", or a path. "hull" is looked up as $HULL, then
#              <repo>/target/release/hull, <repo>/target/debug/hull (also
#              ./target/... relative to the current directory), then PATH.
#   -- CMD...  process.args (same as --args, but keeps quoting intact)
#
# options:
#   --args ARGS     process.args: a JSON array ('["sh","-c","echo hi"]') or
#                   whitespace-separated words ('true', 'sleep 10'); default ["sh"]
#   --rw            root.readonly=false (the spec default is a read-only rootfs)
#   --terminal      process.terminal=true (default false: tests have no tty)
#   --hostname NAME set .hostname (and rootfs/etc/hostname)
#   --force         wipe DIR first if it already holds a bundle
#   -h, --help      this text
set -euo pipefail

prog=${0##*/}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() { echo "$prog: $*" >&2; exit 1; }

force=0 rw=0 terminal=false args_json='' hostname=''
positional=() cmd=()
while (($#)); do
    case $1 in
        --force) force=1 ;;
        --rw) rw=1 ;;
        --terminal) terminal=true ;;
        --args) (($# >= 2)) || die "--args needs a value"; args_raw=$2; shift ;;
        --args=*) args_raw=${1#--args=} ;;
        --hostname) (($# >= 2)) || die "--hostname needs a value"; hostname=$2; shift ;;
        --hostname=*) hostname=${1#--hostname=} ;;
        -h | --help) usage; exit 0 ;;
        --) shift; cmd=("$@"); break ;;
        -*) die "unknown option: $1 (see --help)" ;;
        *) positional+=("$1") ;;
    esac
    shift
done
((${#positional[@]} >= 1 && ${#positional[@]} <= 2)) || { usage >&2; exit 2; }
dir=${positional[0]}
runtime_name=${positional[1]:-hull}

# jq patches config.json; installing it here keeps callers (tests, CI) simple.
if ! command -v jq >/dev/null; then
    [[ $(id -u) == 0 ]] || die "jq is required (apt-get install jq)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq jq >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq jq >/dev/null; } ||
        die "could not install jq"
fi

# process.args as a JSON array: `-- CMD...` wins over --args, default ["sh"].
# Encoded in bash rather than jq: jq 1.6 takes ~35 ms to start.
json_str() {
    local s=$1
    s=${s//\\/\\\\} s=${s//\"/\\\"}
    s=${s//$'\n'/\\n} s=${s//$'\t'/\\t} s=${s//$'\r'/\\r}
    [[ $s != *[[:cntrl:]]* ]] || die "control character in argument: $1"
    printf '"%s"' "$s"
}
json_array() {
    local out='' a j
    for a in "$@"; do
        j=$(json_str "$a") || exit 1 # command substitution drops set -e
        out+=${out:+,}$j
    done
    printf '[%s]' "$out"
}
if ((${#cmd[@]})); then
    args_json=$(json_array "${cmd[@]}")
elif [[ -v args_raw ]]; then
    if [[ $args_raw =~ ^[[:space:]]*\[ ]]; then
        # Full validation happens in the jq patch below.
        [[ $args_raw =~ \][[:space:]]*$ ]] || die "--args: bad JSON array: $args_raw"
        args_json=$args_raw
    else
        read -r -a words <<<"$args_raw"
        ((${#words[@]})) || die "--args: empty"
        args_json=$(json_array "${words[@]}")
    fi
else
    args_json='["sh"]'
fi

# Resolve the runtime binary used for `spec`.
find_hull() {
    local c
    if [[ -n ${HULL:-} ]]; then
        [[ -x $HULL ]] || die "HULL=$HULL is not executable"
        echo "$HULL"; return
    fi
    for c in "$repo/target/release/hull" "$repo/target/debug/hull" \
        ./target/release/hull ./target/debug/hull; do
        [[ -x $c ]] && { echo "$c"; return; }
    done
    command -v hull && return
    die "hull not found (set HULL=, run 'cargo build', or pass RUNTIME, e.g. runc)"
}
case $runtime_name in
    hull) runtime=$(find_hull) ;;
    */*) [[ -x $runtime_name ]] || die "$runtime_name is not executable"; runtime=$runtime_name ;;
    *) runtime=$(command -v "$runtime_name") || die "runtime not found: $runtime_name" ;;
esac

# Refuse to clobber anything that is not (obviously) a bundle of ours.
mkdir -p -- "$dir"
dir=$(cd -- "$dir" && pwd -P)
if [[ -n $(ls -A -- "$dir") ]]; then
    ((force)) || die "$dir is not empty (use --force to rebuild)"
    [[ $dir != / && ( -e $dir/config.json || -e $dir/rootfs ) ]] ||
        die "$dir does not look like a bundle; refusing to wipe it even with --force"
    # Contents only: DIR itself may be a mount point or a caller's mktemp dir.
    find "$dir" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +
fi
# On failure leave DIR empty rather than half-built, so a retry needs no --force.
on_exit() {
    local rc=$?
    ((rc == 0)) || find "$dir" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +
    exit "$rc"
}
trap on_exit EXIT

busybox=/bin/busybox
[[ -x $busybox ]] || die "$busybox missing (apt-get install busybox-static)"
# A dynamically linked busybox (package "busybox") would not run in the rootfs.
if ldd "$busybox" 2>/dev/null | grep -q '=>'; then
    die "$busybox is dynamically linked; install busybox-static"
fi

rootfs=$dir/rootfs
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,root}
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"
cp "$busybox" "$rootfs/bin/busybox"

# Applet symlinks, relative so they resolve the same from the host and inside
# the container. Done in one perl process (perl-base is Essential on Debian)
# instead of ~270 `ln` forks. Creating an inode costs ~0.4 ms on some disks,
# so each directory gets one real symlink and the other applets there are
# hard links to that symlink (link(2) does not follow symlinks): 4 new inodes
# instead of ~270, and every name is still a symlink to busybox.
"$busybox" --list-full | (cd "$rootfs" && perl -ne '
    chomp; next if $_ eq "" || $_ eq "bin/busybox";
    my @parts = split m{/};
    my $depth = @parts - 1;
    my $dir = join("/", @parts[0 .. $#parts - 1]);
    my $target = $depth == 0 ? "bin/busybox"
               : $dir eq "bin" ? "busybox"
               : ("../" x $depth) . "bin/busybox";
    my $d = "";
    for my $p (@parts[0 .. $#parts - 1]) { $d .= "$p/"; -d $d or mkdir $d or die "mkdir $d: $!\n"; }
    next if -l $_;
    if (my $first = $first{$dir}) { link($first, $_) or die "link $_: $!\n"; next; }
    symlink($target, $_) or die "symlink $_: $!\n";
    $first{$dir} = $_;
')

cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
EOF

"$runtime" spec --bundle "$dir" >/dev/null
[[ -s $dir/config.json ]] || die "$runtime spec --bundle $dir wrote no config.json"

# One jq run (it is the slowest step): patch, and validate --args JSON.
jq --argjson args "$args_json" --argjson terminal "$terminal" \
    --argjson rw "$rw" --arg hostname "$hostname" '
    if ($args | type) != "array" or ($args | length) == 0
        or ($args | map(type == "string") | all | not)
    then error("--args must be a non-empty JSON array of strings") else . end
    | .process.terminal = $terminal
    | .process.args = $args
    | if $rw == 1 then .root.readonly = false else . end
    | if $hostname != "" then .hostname = $hostname else . end
' "$dir/config.json" >"$dir/config.json.new" || die "could not patch config.json (bad --args?)"
mv "$dir/config.json.new" "$dir/config.json"

# /etc/hostname matches what the container's UTS namespace will be given.
if [[ -z $hostname && $(<"$dir/config.json") =~ \"hostname\":[[:space:]]*\"([^\"]*)\" ]]; then
    hostname=${BASH_REMATCH[1]}
fi
echo "${hostname:-hull}" >"$rootfs/etc/hostname"
