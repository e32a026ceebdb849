#!/usr/bin/env bash
# Builds the Debian packages lienthong-relay and lienthong-gateway with Debian's own dpkg-deb
# from a staged tree (docs/operations.md, "Installing from the Debian packages").
#
#   bash deploy/package-deb.sh                     # cargo build --release, then package
#   bash deploy/package-deb.sh --bin-dir DIR       # package lt-relay and lt-gateway from DIR
#   bash deploy/package-deb.sh --out DIR           # where the .deb files go (target/debian)
#
# Each package holds its program in /usr/bin (debug information stripped), a man page made
# from the program's --help texts, a hardened systemd template unit (deploy/deb/*.service),
# commented example configurations in /etc/lienthong/examples (conffiles), and maintainer
# scripts (deploy/deb/postinst, prerm, postrm) that create the system account `lienthong`,
# /var/lib/lienthong, /var/backups/lienthong and /etc/lienthong/pki. Needs dpkg-deb (package
# dpkg), and binutils (strip, objdump) when present. Prints the path of each package it writes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

bin_dir=
out_dir=$root/target/debian
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir=${2:?--bin-dir needs a folder}; shift 2 ;;
    --out) out_dir=${2:?--out needs a folder}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "package-deb: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done

for tool in dpkg-deb dpkg gzip; do
  command -v "$tool" >/dev/null || { echo "package-deb: $tool not found (Debian package dpkg / gzip)" >&2; exit 1; }
done

if [ -z "$bin_dir" ]; then
  cargo build --release -p lienthong-relay -p lienthong-gateway
  bin_dir=$root/target/release
fi
bin_dir=$(cd "$bin_dir" && pwd)
for exe in lt-relay lt-gateway; do
  [ -x "$bin_dir/$exe" ] || { echo "package-deb: $bin_dir/$exe not found" >&2; exit 1; }
done
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)

# The workspace version ([workspace.package] version); a Cargo pre-release (1.2.0-rc.1) sorts
# before its release in Debian only with a tilde (1.2.0~rc.1).
version=$(awk '
  /^\[/ { section = $0 }
  section == "[workspace.package]" && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
' Cargo.toml)
[ -n "$version" ] || { echo "package-deb: no [workspace.package] version in Cargo.toml" >&2; exit 1; }
# A package must hold the version it names: refuse binaries built from another one.
for exe in lt-relay lt-gateway; do
  built=$("$bin_dir/$exe" --version)
  if [ "$built" != "$exe $version" ]; then
    echo "package-deb: $bin_dir/$exe is '$built', but Cargo.toml says $version: build it again" >&2
    exit 1
  fi
done
version=${version//-/\~}
arch=$(dpkg --print-architecture)
date=$(git log -1 --format=%cs 2>/dev/null || date -u +%Y-%m-%d)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- man pages, from the --help texts ------------------------------------------------------

# Escapes text for a roff no-fill block.
roff_text() {
  sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
}

# The subcommands a clap --help lists under "Commands:" (without "help").
subcommands() {
  awk '/^Commands:/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/ { print $1 }' |
    grep -vx help || true
}

# Writes the help of `$exe $*` and of every subcommand below it, as man page sections.
help_sections() {
  local exe=$1; shift
  local text
  text=$("$exe" "$@" --help)
  if [ $# -gt 0 ]; then
    printf '.SS "%s %s"\n' "$(basename "$exe")" "$*"
  fi
  printf '.nf\n'
  printf '%s\n' "$text" | roff_text
  printf '.fi\n'
  local sub
  for sub in $(printf '%s\n' "$text" | subcommands); do
    help_sections "$exe" "$@" "$sub"
  done
}

# man_page EXE PACKAGE SEE_ALSO > page.1
man_page() {
  local exe=$1 pkg=$2 see=$3 name
  name=$(basename "$exe")
  local about
  about=$("$exe" --help | head -n 1 | sed 's/\.$//')
  cat <<EOF
.TH $(echo "$name" | tr '[:lower:]' '[:upper:]') 1 "$date" "lienthong $version" "lienthong"
.SH NAME
$name \\- $(printf '%s\n' "$about" | roff_text)
.SH SYNOPSIS
.B $name
.RI [ OPTIONS ] " COMMAND " [ ARGS ]
.SH DESCRIPTION
This page collects the \\fB\\-\\-help\\fR text of \\fB$name\\fR and of each of its commands.
The documentation is in \\fI/usr/share/doc/$pkg/\\fR.
EOF
  # The top-level help first, then one subsection per command.
  printf '.SH OPTIONS AND COMMANDS\n'
  local sections
  sections=$(help_sections "$exe")
  printf '%s\n' "$sections"
  cat <<EOF
.SH FILES
.TP
.I /etc/lienthong/NAME.toml
a node configuration, run by the unit \\fB${pkg}@NAME.service\\fR
.TP
.I /etc/lienthong/examples/
commented example configurations
.TP
.I /etc/lienthong/pki/
certificates and keys (root:lienthong, 0750)
.TP
.I /var/lib/lienthong/
the store (node.data_dir), owned by the account lienthong
.SH EXIT STATUS
0 done (or stopped cleanly), 1 another error, 2 bad command line, 64 bad configuration.
.SH SEE ALSO
$see
EOF
}

# ---- staging ---------------------------------------------------------------------------------

# stage PACKAGE EXE DESCRIPTION-FILE DOCS...
stage() {
  local pkg=$1 exe=$2 other=$3 tree=$work/$1
  shift 3
  install -d -m 0755 "$tree/DEBIAN" "$tree/usr/bin" "$tree/usr/share/man/man1" \
    "$tree/usr/share/doc/$pkg" "$tree/usr/lib/systemd/system" "$tree/etc/lienthong/examples"

  install -m 0755 "$bin_dir/$exe" "$tree/usr/bin/$exe"
  if command -v strip >/dev/null; then
    strip --strip-debug "$tree/usr/bin/$exe"
  fi

  install -m 0644 "deploy/deb/$pkg@.service" "$tree/usr/lib/systemd/system/$pkg@.service"
  install -m 0644 deploy/deb/copyright "$tree/usr/share/doc/$pkg/copyright"
  local doc
  for doc in "$@"; do
    install -m 0644 "$doc" "$tree/usr/share/doc/$pkg/$(basename "$doc")"
  done

  local see
  if [ "$exe" = lt-relay ]; then see='.BR lt\-gateway (1)'; else see='.BR lt\-relay (1)'; fi
  man_page "$tree/usr/bin/$exe" "$pkg" "$see" | gzip -9n > "$tree/usr/share/man/man1/$exe.1.gz"
  chmod 0644 "$tree/usr/share/man/man1/$exe.1.gz"

  local script
  for script in postinst prerm postrm; do
    sed -e "s/@PACKAGE@/$pkg/g" -e "s/@UNIT@/$pkg/g" -e "s/@OTHER@/$other/g" \
      "deploy/deb/$script" > "$tree/DEBIAN/$script"
    chmod 0755 "$tree/DEBIAN/$script"
  done
}

# The packages each library the program needs comes from, with the lowest libc6 its symbols
# allow: what dpkg-shlibdeps would find, without a debian/ folder.
depends_of() {
  local exe=$1 deps=() lib path pkg
  while read -r lib path; do
    pkg=$(dpkg -S "$path" 2>/dev/null | head -n 1 | cut -d: -f1) || true
    if [ -z "$pkg" ] && [ -e "$path" ]; then
      pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n 1 | cut -d: -f1) || true
    fi
    [ -n "$pkg" ] || { echo "package-deb: $exe needs $lib ($path), which no Debian package provides" >&2; exit 1; }
    deps+=("$pkg")
  done < <(ldd "$exe" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')
  local glibc
  glibc=$(objdump -T "$exe" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1) || true
  deps+=(libc6 procps)
  printf '%s\n' "${deps[@]}" | sort -u | while read -r pkg; do
    if [ "$pkg" = libc6 ] && [ -n "$glibc" ]; then echo "libc6 (>= $glibc)"; else echo "$pkg"; fi
  done | paste -sd, | sed 's/,/, /g'
}

# control PACKAGE EXE SUMMARY DESCRIPTION
control() {
  local pkg=$1 exe=$2 summary=$3 description=$4 tree=$work/$1
  (cd "$tree" && find etc -type f | sort | sed 's|^|/|') > "$tree/DEBIAN/conffiles"
  (cd "$tree" && find usr -type f | sort | xargs md5sum) > "$tree/DEBIAN/md5sums"
  chmod 0644 "$tree/DEBIAN/conffiles" "$tree/DEBIAN/md5sums"
  local size depends
  size=$(du -sk --exclude=DEBIAN "$tree" | cut -f1)
  depends=$(depends_of "$tree/usr/bin/$exe")
  {
    echo "Package: $pkg"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: lienthong maintainers <lienthong@example.invalid>"
    echo "Installed-Size: $size"
    echo "Depends: $depends"
    echo "Section: net"
    echo "Priority: optional"
    echo "Homepage: https://example.invalid/lienthong"
    echo "Description: $summary"
    printf '%s\n' "$description" | sed 's/^$/./; s/^/ /'
  } > "$tree/DEBIAN/control"
  chmod 0644 "$tree/DEBIAN/control"
  local deb=$out_dir/${pkg}_${version}_${arch}.deb
  dpkg-deb --root-owner-group -Zxz --build "$tree" "$deb" >/dev/null
  echo "$deb"
}

umask 022

stage lienthong-relay lt-relay lienthong-gateway \
  README.md docs/configuration.md docs/operations.md docs/security.md docs/security-levels.md
install -m 0644 deploy/examples/*.toml "$work/lienthong-relay/etc/lienthong/examples/"

stage lienthong-gateway lt-gateway lienthong-relay \
  README.md docs/gateway.md docs/configuration.md docs/operations.md
# The gateway's example: the commune's (a leaf node, which lt-gateway runs).
{
  echo "# Example for lt-gateway (package lienthong-gateway), from the commune example: a commune"
  echo "# office is a leaf node, which lt-gateway runs. Install it as /etc/lienthong/gw.toml"
  echo "# (root:lienthong, 0640) and run \`systemctl enable --now lienthong-gateway@gw\`."
  echo "#"
  sed 's|^# Run:   lt-relay serve --config /etc/lienthong/node.toml$|# Run:   lt-gateway serve --config /etc/lienthong/gw.toml|' deploy/examples/commune.toml
} > "$work/lienthong-gateway/etc/lienthong/examples/gateway.toml"
chmod 0644 "$work/lienthong-gateway/etc/lienthong/examples/gateway.toml"

control lienthong-relay lt-relay \
  "relay node of the national electronic-document interchange" \
  "lt-relay runs a node of the interchange over which state agencies send one
another signed official documents and follow what each recipient did with
them: it stores documents durably and forwards them over mutual-TLS gRPC to
its parent and children. It also holds the operator commands (pki, assess,
backup, restore, audit, register, report, track).

The unit lienthong-relay@NAME.service runs /etc/lienthong/NAME.toml as the
system account lienthong, hardened; examples are in /etc/lienthong/examples."

control lienthong-gateway lt-gateway \
  "office gateway of the national electronic-document interchange" \
  "lt-gateway connects a district or commune office to the interchange: a node
with no children linked to its parent relay, and the staff commands (send,
inbox, fetch, ack, status, recall, track) that work with it.

The unit lienthong-gateway@NAME.service runs /etc/lienthong/NAME.toml as the
system account lienthong, hardened; /etc/lienthong/examples/gateway.toml is an
example."
