# Sourced by setup.sh and fmnist.sh: `apt_install PKG...` installs Debian packages quietly (as root,
# or through sudo), after refreshing the package lists.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get update -qq >/dev/null || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
