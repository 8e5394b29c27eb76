package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

func init() {
	register("passwd", "read a password on stdin, print its bcrypt hash for api.users (--secret: print a random ha.secret)", runPasswd)
}

// runPasswd is `medialb passwd`: the first line of stdin is the password
// (without its line ending); its bcrypt hash goes to stdout.
func runPasswd(args []string) int {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cost := fs.Int("cost", 10, "bcrypt `cost`, 4..31")
	secret := fs.Bool("secret", false, "print a random ha.secret (32 bytes of randomness, base64) instead; reads nothing")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: echo 'PASSWORD' | medialb passwd\n       medialb passwd --secret\n\nReads a password (the first line of stdin) and prints a bcrypt hash for\napi.users[].password_hash; with --secret, prints a random ha.secret.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *secret {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			fmt.Fprintf(stderr, "medialb passwd: read random bytes: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, base64.RawURLEncoding.EncodeToString(b[:]))
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "medialb passwd: unexpected argument %q (the password is read from stdin)\n", fs.Arg(0))
		return 2
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		fmt.Fprintf(stderr, "medialb passwd: --cost %d: want %d..%d\n", *cost, bcrypt.MinCost, bcrypt.MaxCost)
		return 2
	}
	if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stderr, "Password (echoed): ")
		}
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(stderr, "medialb passwd: read password: %v\n", err)
		return 1
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if pw == "" {
		fmt.Fprintln(stderr, "medialb passwd: empty password refused")
		return 1
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
	if err != nil {
		fmt.Fprintf(stderr, "medialb passwd: hash password: %v (bcrypt takes at most 72 bytes)\n", err)
		return 1
	}
	fmt.Fprintln(stdout, string(hash))
	return 0
}
