// Package testcloud runs local stand-ins for EC2 instances: a cached
// Debian rootfs (debootstrap) booted per instance under an overlay with
// systemd-nspawn, each in its own network namespace on a host bridge and
// with its own IMDSv2-only metadata service (amazon-ec2-metadata-mock) at
// 169.254.169.254 that only it can reach. See README.md for what it needs
// (Linux, root, debootstrap, systemd-container, iproute2) and how to clean
// up by hand.
package testcloud
