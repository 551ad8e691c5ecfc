// Package packertest runs the plugin under real Packer (1.16.0, built by
// `make deps` into $ESBAKE_CACHE/bin/packer): it installs the release build
// from dist/ (`make release`) with `packer plugins install --path`, then runs
// `packer init`, `fmt -check`, `validate` and a full `packer build` of
// example.pkr.hcl on the local test cloud, with an interrupt case.
//
// Outside CI (CI != "true") the tests skip when Packer or the release is
// missing; in CI they fail, saying which make target provides it.
package packertest
