// Package vm is testcloud's QEMU backend: guests with their own kernel
// (reboot, sysctls such as vm.max_map_count) from testcloud's kernel
// image, each with its own IMDS on a second NIC (a slirp guestfwd per
// request), started by restoring a saved state in seconds, or by a full
// boot for a changed disk. See ../README.md, "QEMU backend".
package vm
