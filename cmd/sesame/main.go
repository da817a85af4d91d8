// Command sesame is the Sesame server and its command-line client.
//
//	sesame serve                 start the server
//	sesame ws|cred|keys ...      talk to a server (see sesame help)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/sesamehq/sesame/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr, nil))
}

const usage = `Sesame: API authentication from both sides.

Usage:
  sesame serve [flags]            start the server (sesame serve -h for flags)
  sesame ws list|get|create|copy|rm ...
  sesame cred list|get|put|rm ...
  sesame conn list|get|put|test|rm ...
  sesame fn list|get|put|call|rm ...
  sesame oauth authorize|grants|revoke|token|providers ...
  sesame user|key|group|role|grant ...
  sesame keys rotate|generate ...
  sesame app keygen|cert|certs|sign|tokens|revoke-cert|revoke-token ...
  sesame audit list|tail|verify|export ...
  sesame backup [flags] FILE      consistent snapshot of the store (--data or --postgres), secrets sealed
  sesame restore [flags] FILE     load a backup into an empty store; needs the master key that opens it
  sesame version                  print the version and commit (also --version)
  sesame help

Client commands reach a server by --server / SESAME_SERVER (default http://127.0.0.1:8420)
and --key / SESAME_KEY, print tables, and JSON with --json.
`

// run is the whole program, testable: it takes its arguments, environment and streams, and
// returns the exit code. listening, if set, is told the server's address once it accepts.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, listening func(addr string)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], getenv, stdout, stderr, listening)
	case "backup":
		err = backupCommand(ctx, args[1:], getenv, stdout, stderr)
	case "restore":
		err = restoreCommand(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version":
		fmt.Fprint(stdout, readBuildVersion(debug.ReadBuildInfo))
		return 0
	default:
		err = cli.Run(ctx, args, cli.Env{Getenv: getenv, Stdin: stdin, Stdout: stdout, Stderr: stderr})
	}
	if err == nil {
		return 0
	}
	var ue cli.UsageError
	var se usageError
	if errors.As(err, &ue) || errors.As(err, &se) {
		fmt.Fprintf(stderr, "sesame: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "sesame: %v\n", err)
	return 1
}
