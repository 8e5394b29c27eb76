// Package depscheck holds the test that keeps scripts/packages.list honest: every
// external program the tree's Go sources execute (exec.Command, exec.LookPath,
// lab.Exec, `ip netns exec NS PROG` and every helper that passes its argument on to
// one of those) must be listed there with the Debian package that provides it, so
// that `make test`, `make demo` and `make bench` install it on a fresh machine.
// The package has no code of its own.
package depscheck
