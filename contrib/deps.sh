# Sourced by test.sh and try.sh: install the Debian 12 packages iterfs needs
# to build and to run its tests, when any is missing (root only).
# The writers the drop box is tested with (tests/writers.bats) are real tools:
# coreutils (cp, install, mv), sed, vim, rsync, python3; util-linux gives
# flock and runuser, passwd useradd for the other-user test.
iterfs_pkgs=(build-essential meson ninja-build pkg-config libfuse3-dev fuse3 libcjson-dev
	libssl-dev bats python3 rsync tar strace procps diffutils e2fsprogs xfsprogs util-linux
	coreutils sed vim passwd bsdutils groff-base man-db bash-completion systemd)

iterfs_install_deps() {
	local p missing=()

	for p in "${iterfs_pkgs[@]}"; do
		# No pipe into grep -q: under pipefail an early exit of grep
		# fails the pipeline with SIGPIPE.
		[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
			missing+=("$p")
	done
	[ "${#missing[@]}" -gt 0 ] || return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "iterfs: missing packages: ${missing[*]}; run as root to install them" >&2
		return 1
	fi
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
