// Package e2e holds the tests that run the project's binaries against real
// Linux guests of the local test cloud (internal/testcloud), through the
// same interfaces Packer and operators use: the plugin's RPC protocol, the
// SDK's SSH communicator, esnode on the guest.
package e2e
